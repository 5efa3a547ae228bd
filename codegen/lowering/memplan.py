"""An in-place-aware placement of the workspace tensors, on top of Relax's plan.

Relax's StaticPlanBlockMemory never lets a kernel's output share bytes with one of its inputs, so a 3x3
convolution keeps its whole input and its whole output live at once.  Many kernels can do better, because they
read an input byte for the last time before they write the output bytes that would cover it:

* ADD/SUB read element i of both inputs before writing output element i: the output may start exactly at the
  start of an input that dies there (delta 0);
* the convolution microkernel copies the windows of two pixels into its scratch before it writes those pixels,
  pixel after pixel in row-major order, so its output may start `delta` bytes from its input's start as long as
  every output byte written stays below every input byte still to be read (a 3x3 convolution with padding 1
  needs about one input row of margin, a pointwise expansion ends where its input ends);
* the depthwise microkernel reads all taps of a pixel (per group of four channels) before writing that pixel.

Each op states its largest safe delta (`inplace_delta_*`, computed from its shapes); this module re-places the
tensors of Relax's call list greedily in call order: an output whose input dies at that call goes at the
input's offset + delta when those bytes are free, anything else first-fit.  The result never uses more bytes
than Relax's plan (it is kept only when smaller).

A second placement in the order TFLite Micro's GreedyMemoryPlanner uses (biggest tensor first, each where no
tensor alive at the same time is), with the in-place pairs as allowed overlaps and each tensor where it widens the
placement least (so an output with a negative delta may start below its input), packs models whose big tensors
are not met in call order (an inverted-residual MobileNetV2: the expansion, its PAD and the stride-2 depthwise).
`replan` keeps the smallest of these placements; `check` proves a placement sound against the Relax call list it
came from: two tensors share bytes only while one of them is dead, or as a declared in-place pair within its
declared offset (raises PlanError otherwise; pipeline.lower checks every plan it keeps).

Besides the microkernels, a TE kernel whose loop nest runs over its output in row-major order and reads an output
element's inputs before writing it states its delta with `inplace_delta_gather` from the lowest input element each
output element reads: PAD (its source element), the pools (their window), the plain elementwise kernels
(`inplace_delta_broadcast`: ADD/MUL/... through emit_binary, lookup tables, QUANTIZE, RELU's requantization)."""

import numpy as np

ALIGN = 16


def _down(v, a=ALIGN):
    return v // a * a


def _up(v, a=ALIGN):
    return (v + a - 1) // a * a


def _min_read_suffix(first_byte):
    """suffix[p] = min(first_byte[p:]), suffix[P] = +inf."""
    out = np.empty(len(first_byte) + 1, np.int64)
    out[-1] = np.iinfo(np.int64).max // 4
    out[:-1] = np.minimum.accumulate(np.asarray(first_byte, np.int64)[::-1])[::-1]
    return out


def _window_first_byte(OH, OW, H, W, C, SH, SW, PT, PL):
    """The lowest input byte each output pixel's window reads (row-major pixels)."""
    oh, ow = np.divmod(np.arange(OH * OW), OW)
    ih = np.maximum(oh * SH - PT, 0)
    iw = np.maximum(ow * SW - PL, 0)
    # a window that starts above the input's first row reads its first valid row from column iw0 on
    return (ih * W + iw) * C


def inplace_delta_conv(H, W, C, OH, OW, OC, SH, SW, PT, PL):
    """Largest output-start minus input-start (bytes) for tvmgen_mk_conv: pixels in blocks of two, both
    windows copied to the scratch before the block's outputs are written."""
    P = OH * OW
    first = _window_first_byte(OH, OW, H, W, C, SH, SW, PT, PL)
    need = _min_read_suffix(first)
    best = None
    for b in range(0, P, 2):
        written_end = min(b + 2, P) * OC          # bytes [0, written_end) of the output are written
        later = need[min(b + 2, P)]               # lowest input byte read by any later block
        if later >= np.iinfo(np.int64).max // 8:
            continue
        d = int(later - written_end)
        best = d if best is None else min(best, d)
    return best if best is not None else None


def inplace_delta_depthwise(H, W, C, OH, OW, SH, SW, PT, PL):
    """Largest delta for tvmgen_mk_dwconv: the whole pixel is written after its own taps are read (per group
    of channels, so count the pixel's bytes as written before its later groups read: conservative)."""
    P = OH * OW
    first = _window_first_byte(OH, OW, H, W, C, SH, SW, PT, PL)
    need = _min_read_suffix(first)
    d = min(int(need[p] - (p + 1) * C) for p in range(P))
    return d


def inplace_delta_gather(first, in_itemsize=1, out_itemsize=1):
    """Largest delta for a kernel that computes its output elements one after another in row-major order, each
    from input elements it reads before writing it; `first[j]` is the lowest input element output element j
    reads (< 0: none, e.g. padding).  When element j' is computed, elements [0, j') are written, so the bytes
    [out, out + j' * out_itemsize) must stay below input byte in + min(first[j':]) * in_itemsize.  PAD reads one
    element (first = its source); a pooling window reads several (first = the window's lowest in-bounds one)."""
    first = np.asarray(first, np.int64).ravel().copy()
    if len(first) < 2:
        return 0
    first[first < 0] = np.iinfo(np.int64).max // 4
    need = _min_read_suffix(first)[1:-1]              # need[j'-1] = min(first[j':]), j' = 1 .. n-1
    j = np.arange(1, len(first), dtype=np.int64)
    ok = need < np.iinfo(np.int64).max // 8
    if not ok.any():
        return 0
    return int(np.min(need[ok] * in_itemsize - j[ok] * out_itemsize))


def inplace_delta_pool(H, W, C, OH, OW, SH, SW, PT, PL, in_itemsize=1, out_itemsize=1):
    """inplace_delta_gather for a pooling loop nest over (oh, ow, c) that reads a pixel's whole window into an
    accumulator before it writes the pixel's element."""
    first = _window_first_byte(OH, OW, H, W, C, SH, SW, PT, PL)[:, None] + np.arange(C)[None, :]
    return inplace_delta_gather(first, in_itemsize, out_itemsize)


def inplace_delta_broadcast(in_shape, out_shape, in_itemsize=1, out_itemsize=1):
    """inplace_delta_gather for an elementwise loop nest over `out_shape` that reads its operand of `in_shape`
    under numpy broadcasting (equal shapes and item sizes: 0, the output may start where the input starts)."""
    n = int(np.prod(in_shape, dtype=np.int64))
    src = np.broadcast_to(np.arange(n, dtype=np.int64).reshape(tuple(in_shape)), tuple(out_shape))
    return inplace_delta_gather(src, in_itemsize, out_itemsize)


class PlanError(Exception):
    """A placement that lets two live tensors share bytes (an internal error: see `check`)."""


def _lifetimes(calls, copies):
    """The workspace tensors of `calls` ([(kernel, args, out_nbytes)], args as built by pipeline._plan): one per
    kernel output or scratch in the workspace, reads matched to the latest producer at the same offset (views and
    reshapes keep the offset).  Returns (tensors [{size, born, last}], reads per call [(arg index, tensor id)],
    outs per call (output tensor id or None, scratch tensor id or None), tensor ids the final copies read), or
    None when a read cannot be matched to its producer."""
    n = len(calls)
    tensors, producer_at, reads, outs = [], {}, [], []
    for i, (_, args, nbytes) in enumerate(calls):
        r = []
        for k, a in enumerate(args[:-1]):
            if a[0] == "ws":
                t = producer_at.get(a[1])
                if t is None:
                    return None
                r.append((k, t))
                tensors[t]["last"] = max(tensors[t]["last"], i)
        sid = None
        for k, a in enumerate(args[:-1]):
            if a[0] == "scratch":
                sid = len(tensors)
                tensors.append({"size": _up(a[2]), "born": i, "last": i})
        oid = None
        if args[-1][0] == "ws":
            oid = len(tensors)
            tensors.append({"size": _up(nbytes), "born": i, "last": i})
            producer_at[args[-1][1]] = oid
        reads.append(r)
        outs.append((oid, sid))
    final_reads = []
    for dst, src, _ in copies:
        if src[0] == "ws":
            t = producer_at.get(src[1])
            if t is None:
                return None
            tensors[t]["last"] = n
            final_reads.append(t)
    return tensors, reads, outs, final_reads


def _pairs(calls, inplace, tensors, reads, outs):
    """{(output tensor, input tensor): delta} for every declared in-place pair whose input dies at the call."""
    pairs = {}
    for i, (kernel, args, _) in enumerate(calls):
        oid = outs[i][0]
        if oid is None:
            continue
        rd = dict(reads[i])
        for k, delta in inplace.get(kernel, ()):
            src = rd.get(k)
            if src is not None and tensors[src]["last"] == i:
                pairs[(oid, src)] = min(delta, pairs.get((oid, src), delta))
    return pairs


def _rewrite(calls, copies, outs, reads, final_reads, off):
    """`calls` and `copies` with every workspace argument at its tensor's new offset `off[tensor id]`."""
    new_calls = []
    for i, (kernel, args, nbytes) in enumerate(calls):
        oid, sid = outs[i]
        rd = dict(reads[i])
        new_args = []
        for k, a in enumerate(args):
            if k == len(args) - 1 and a[0] == "ws":
                new_args.append(("ws", off[oid]))
            elif a[0] == "ws":
                new_args.append(("ws", off[rd[k]]))
            elif a[0] == "scratch":
                new_args.append(("scratch", off[sid], a[2]))
            else:
                new_args.append(a)
        new_calls.append((kernel, new_args, nbytes))
    new_copies = []
    fr = iter(final_reads)
    for dst, src, nb in copies:
        new_copies.append((dst, ("ws", off[next(fr)]) if src[0] == "ws" else src, nb))
    return new_calls, new_copies


def replan(calls, copies, inplace, relax_size):
    """The smallest of the placements (call order with and without margins reserved below in-place inputs, then
    greedy by size in a few orders; the first found wins a tie), or None when none is smaller than Relax's plan
    or a read cannot be matched to its producer.  Returns (calls, copies, size)."""
    best = None
    for margins in (False, True):
        r = _replan(calls, copies, inplace, relax_size, margins)
        if r is not None and (best is None or r[2] < best[2]):
            best = r
    lt = _lifetimes(calls, copies)
    if lt is None:
        return best
    tensors, reads, outs, final_reads = lt
    pairs = _pairs(calls, inplace, tensors, reads, outs)
    ids = range(len(tensors))
    orders = (
        # TFLM's GreedyMemoryPlanner: biggest first, the earlier one first among equals
        sorted(ids, key=lambda t: (-tensors[t]["size"], tensors[t]["born"], t)),
        # biggest first by bytes x calls alive
        sorted(ids, key=lambda t: (-tensors[t]["size"] * (tensors[t]["last"] - tensors[t]["born"] + 1),
                                   tensors[t]["born"], t)),
        # the longest-lived first (skip tensors), then biggest
        sorted(ids, key=lambda t: (-(tensors[t]["last"] - tensors[t]["born"]), -tensors[t]["size"], t)),
    )
    for order in orders:
        off = _place_greedy(tensors, pairs, order)
        size = _up(max([off[t] + tensors[t]["size"] for t in off] + [0]))
        if size < relax_size and (best is None or size < best[2]):
            best = (*_rewrite(calls, copies, outs, reads, final_reads, off), size)
    return best


def _place_greedy(tensors, pairs, order):
    """Offsets for `tensors`, placed one after another in `order`, each where it shares no byte with a placed
    tensor alive at the same time (except an in-place partner within the pair's delta) and widens the placement
    least, the lowest such offset among equals."""
    partner = {}
    for (o, i), delta in pairs.items():
        partner.setdefault(o, {})[i] = ("in", delta)    # o is the output: o - i <= delta
        partner.setdefault(i, {})[o] = ("out", delta)   # i is the input:  o - i <= delta
    off = {}
    placed = []
    lo = hi = 0
    for t in order:
        size, born, last = tensors[t]["size"], tensors[t]["born"], tensors[t]["last"]
        live = [b for b in placed if tensors[b]["born"] <= last and born <= tensors[b]["last"]]
        mine = partner.get(t, {})
        cands = {0}
        for b in live:
            cands.add(_up(off[b] + tensors[b]["size"]))
            if b in mine:
                role, delta = mine[b]
                cands.add(off[b] + _down(delta) if role == "in" else off[b] - _down(delta))

        def ok(c):
            for b in live:
                ob, sb = off[b], tensors[b]["size"]
                if c + size <= ob or c >= ob + sb:
                    continue
                if b in mine:
                    role, delta = mine[b]
                    if (c - ob if role == "in" else ob - c) <= delta:
                        continue
                return False
            return True

        # the feasible offset that widens the extent least, the lowest among equals; an in-place partner's offset
        # may lie below the lowest placed tensor (a negative delta: the output starts below its input)
        feasible = [c for c in sorted(cands) if ok(c)]
        off[t] = min(feasible, key=lambda c: (max(hi, c + size) - min(lo, c), c))
        lo, hi = min(lo, off[t]), max(hi, off[t] + size)
        placed.append(t)
    return {t: o - lo for t, o in off.items()}


def check(calls, new_calls, copies, new_copies, inplace):
    """Raise PlanError unless `new_calls`/`new_copies` (a placement of Relax's `calls`/`copies`) keeps every two
    tensors alive at the same call on disjoint bytes, or is a declared in-place pair (input dying at the call that
    writes the output) within its declared delta; also that every call reads what its producer wrote."""
    lt = _lifetimes(calls, copies)
    if lt is None:
        raise PlanError("the call list reads a workspace tensor nobody wrote")
    tensors, reads, outs, final_reads = lt
    pairs = _pairs(calls, inplace, tensors, reads, outs)
    off = {}

    def at(t, where):
        if where[0] not in ("ws", "scratch"):
            raise PlanError("tensor %d moved out of the workspace" % t)
        if off.setdefault(t, where[1]) != where[1]:
            raise PlanError("tensor %d is read at %d but lives at %d" % (t, where[1], off[t]))

    if len(new_calls) != len(calls):
        raise PlanError("the placement has %d calls, Relax's plan %d" % (len(new_calls), len(calls)))
    for i, (_, args, _) in enumerate(new_calls):
        oid, sid = outs[i]
        if oid is not None:
            at(oid, args[-1])
        if sid is not None:
            at(sid, next(a for a in args[:-1] if a[0] == "scratch"))
    for i, (_, args, _) in enumerate(new_calls):
        for k, t in reads[i]:
            at(t, args[k])
    for t, (_, src, _) in zip(final_reads, [c for c in new_copies if c[1][0] == "ws"]):
        at(t, src)
    for a in range(len(tensors)):
        for b in range(a + 1, len(tensors)):
            ta, tb = tensors[a], tensors[b]
            if ta["last"] < tb["born"] or tb["last"] < ta["born"]:
                continue
            oa, ob = off[a], off[b]
            if oa + ta["size"] <= ob or ob + tb["size"] <= oa:
                continue
            if (a, b) in pairs and oa - ob <= pairs[(a, b)]:
                continue
            if (b, a) in pairs and ob - oa <= pairs[(b, a)]:
                continue
            raise PlanError("tensors %d [%d, %d) and %d [%d, %d) overlap while both are alive (calls %d-%d and "
                            "%d-%d)" % (a, oa, oa + ta["size"], b, ob, ob + tb["size"], ta["born"], ta["last"],
                                        tb["born"], tb["last"]))


def _replan(calls, copies, inplace, relax_size, margins):
    """The call-order placement of `calls` with `inplace` = {kernel: [(input arg index, delta), ...]}: an output
    whose input dies at its call goes at the input's offset + delta when those bytes are free, anything else
    first-fit (with `margins`, a tensor whose last reader may overwrite it with a negative delta is placed that
    many bytes up).  Returns (calls, copies, size) or None when Relax's plan is at least as small or a read cannot
    be matched to its producer."""
    lt = _lifetimes(calls, copies)
    if lt is None:
        return None
    tensors, reads, outs, final_reads = lt

    # a tensor read through several arguments of one call (ADD(x, x)) may be overwritten only as far as the
    # tightest of their deltas allows
    tight = []
    for i, (kernel, args, _) in enumerate(calls):
        t = {}
        for k, delta in inplace.get(kernel, ()):
            src = dict(reads[i]).get(k)
            if src is not None:
                t[src] = min(delta, t.get(src, delta))
        tight.append(t)
    margin = {}
    for i, (kernel, args, _) in enumerate(calls):
        for k, delta in inplace.get(kernel, ()):
            src = dict(reads[i]).get(k)
            if margins and src is not None and tensors[src]["last"] == i and tight[i][src] < 0:
                margin[src] = max(margin.get(src, 0), _up(-tight[i][src]))
                break

    off = {}

    def live_at(i, exclude=()):
        return [(off[t], off[t] + tensors[t]["size"]) for t in off
                if t not in exclude and tensors[t]["born"] <= i <= tensors[t]["last"]]

    def fits(lo, size, busy):
        return lo >= 0 and all(lo + size <= s or lo >= e for s, e in busy)

    def first_fit(size, busy):
        lo = 0
        for s, e in sorted(busy):
            if lo + size <= s:
                break
            lo = max(lo, _up(e))
        return lo

    for i, (kernel, args, _) in enumerate(calls):
        oid, sid = outs[i]
        if oid is not None:
            size = tensors[oid]["size"]
            placed = False
            for k, delta in inplace.get(kernel, ()):
                src = dict(reads[i]).get(k)
                if src is not None and tensors[src]["last"] == i:
                    cand = off[src] + _down(tight[i][src])
                    # the other tensors live during the call (the dying input itself may be overlapped)
                    if fits(cand, size, live_at(i, exclude=(src,))):
                        off[oid] = cand
                        placed = True
                        break
            if not placed:
                extra = margin.get(oid, 0)
                off[oid] = first_fit(size + extra, live_at(i)) + extra
        if sid is not None:
            busy = live_at(i)
            off[sid] = first_fit(tensors[sid]["size"], busy)
    size = _up(max([off[t] + tensors[t]["size"] for t in off] + [0]))
    if size >= relax_size:
        return None
    return (*_rewrite(calls, copies, outs, reads, final_reads, off), size)
