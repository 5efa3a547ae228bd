"""codegen/lowering/memplan.py: the in-place-aware workspace placement on top of Relax's plan.

The unit cases drive `replan` with hand-written call lists (what pipeline._plan produces); the model case lowers
a residual block (the shape of ResNet-8's, where Relax keeps three 16 KB tensors live) and checks that the
generated C is still bit-exact with tf.lite while its workspace is smaller than Relax's."""

import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (ROOT, os.path.join(ROOT, "tests")):
    if p not in sys.path:
        sys.path.insert(0, p)

from codegen.lowering import memplan  # noqa: E402
from tflite_helpers import as_input_dtype, check_exact, convert_int8, fit_briefly  # noqa: E402


def test_add_writes_over_its_dying_input():
    # a -> k1 -> t1 (ws 0); a -> k2 -> t2 (ws 1024); add(t1, t2) -> t3 (Relax: ws 2048); t3 -> output
    calls = [("k1", [("input",), ("ws", 0)], 1024),
             ("k2", [("input",), ("ws", 1024)], 1024),
             ("add", [("ws", 0), ("ws", 1024), ("ws", 2048)], 1024),
             ("k3", [("ws", 2048), ("output",)], 16)]
    calls2, copies, size = memplan.replan(calls, [], {"add": [(0, 0), (1, 0)]}, 3072)
    assert size == 2048
    assert calls2[2][1][2] == ("ws", 0) and calls2[3][1][0] == ("ws", 0)


def test_negative_delta_gets_a_margin_and_never_overlaps_live_tensors():
    # t0 stays live (read by the last call); t1 -> conv (delta -256) -> t2; t2 + t0 -> output
    calls = [("k0", [("input",), ("ws", 0)], 4096),
             ("k1", [("ws", 0), ("ws", 4096)], 4096),
             ("conv", [("ws", 4096), ("scratch", 12288, 64), ("ws", 8192)], 4096),
             ("add", [("ws", 8192), ("ws", 0), ("output",)], 4096)]
    calls2, _, size = memplan.replan(calls, [], {"conv": [(0, -256)]}, 12288 + 64)
    offs = {c[0]: c[1] for c in calls2}
    t1, t2 = offs["k1"][-1][1], offs["conv"][-1][1]
    assert t2 == t1 - 256                       # the output starts one margin below its input
    assert t2 >= 4096                           # and clear of t0, still live
    sc = offs["conv"][1]
    assert sc[0] == "scratch" and (sc[1] + 64 <= min(t1, t2) or sc[1] >= max(t1, t2) + 4096)
    assert size <= 4096 + 256 + 4096 + 64 + 16


def test_no_gain_keeps_relax_plan():
    calls = [("k1", [("input",), ("ws", 0)], 1024), ("k2", [("ws", 0), ("output",)], 16)]
    assert memplan.replan(calls, [], {}, 1024) is None


def test_conv_delta_lets_a_3x3_conv_overlap_all_but_a_row():
    d = memplan.inplace_delta_conv(32, 32, 16, 32, 32, 16, 1, 1, 1, 1)
    assert -2 * 33 * 16 <= d < 0                 # about one row (+ the two-pixel block) of margin
    # a pointwise expansion ends where its input ends
    # a pointwise expansion ends about where its input ends (the last two-pixel block reads before it writes)
    assert memplan.inplace_delta_conv(8, 8, 8, 8, 8, 16, 1, 1, 0, 0) == -(8 * 8 - 2) * (16 - 8)


@pytest.mark.heavy      # trains and compiles a residual model (~50 s on 2 shared cores)
def test_residual_block_is_exact_with_a_smaller_workspace(tmp_path):
    import keras
    from codegen.frontend import reader
    from codegen.lowering import pipeline
    L = keras.layers
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3), batch_size=1)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(inp)
    y = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    y = L.Conv2D(16, 3, padding="same")(y)
    y = L.ReLU()(L.Add()([x, y]))
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.Conv2D(16, 1)(y)                      # pointwise, same size
    out = L.Dense(4)(L.GlobalAveragePooling2D()(y))
    model = keras.Model(inp, out)
    X = np.random.default_rng(0).uniform(-1, 1, (16, 16, 16, 3)).astype(np.float32)
    fit_briefly(model, X)
    path = str(tmp_path / "res.tflite")
    with open(path, "wb") as f:
        f.write(convert_int8(model, X))
    m = reader.load(path)
    tensor = 16 * 16 * 16
    assert pipeline.lower(m).workspace_size < 3 * tensor    # Relax alone keeps three such tensors live
    check_exact(path, as_input_dtype(X[:4], m.inputs[0].dtype), tmp_path, expected_ops={"CONV_2D", "ADD"})


# --- property tests: random call lists, the deltas against the kernels' access order, the shared models' plans ---

def _independent_overlaps(calls, new_calls, copies, new_copies, inplace):
    """Pairs of tensors that share bytes while both are alive and are not a declared in-place pair within its
    delta, for a placement `new_calls` of `calls` (written here afresh, not with memplan's own helpers).  In
    `calls` every workspace tensor has its own offset, so a tensor is known by the offset it was written at."""
    born, last, size, where = {}, {}, {}, {}
    for i, ((_, args, nb), (_, new_args, _)) in enumerate(zip(calls, new_calls)):
        for a, b in zip(args[:-1], new_args[:-1]):
            if a[0] == "ws":
                last[a[1]] = i
                assert where[a[1]] == b[1], "call %d reads a tensor where it was not written" % i
            elif a[0] == "scratch":
                key = ("scratch", i)
                born[key], last[key], size[key], where[key] = i, i, a[2], b[1]
        if args[-1][0] == "ws":
            key = args[-1][1]
            born[key], last[key], size[key], where[key] = i, i, nb, new_args[-1][1]
    for (_, src, _), (_, nsrc, _) in zip(copies, new_copies):
        if src[0] == "ws":
            last[src[1]] = len(calls)
            assert where[src[1]] == nsrc[1]
    allowed = {}
    for i, (kernel, args, _) in enumerate(calls):
        for k, delta in inplace.get(kernel, ()):
            a = args[k]
            if a[0] == "ws" and last[a[1]] == i and args[-1][0] == "ws":
                allowed[(args[-1][1], a[1])] = min(delta, allowed.get((args[-1][1], a[1]), delta))
    bad = []
    keys = list(born)
    for x in range(len(keys)):
        for y in range(x + 1, len(keys)):
            a, b = keys[x], keys[y]
            if last[a] < born[b] or last[b] < born[a]:
                continue
            oa, ob = where[a], where[b]
            if oa + size[a] <= ob or ob + size[b] <= oa:
                continue
            if (a, b) in allowed and oa - ob <= allowed[(a, b)]:
                continue
            if (b, a) in allowed and ob - oa <= allowed[(b, a)]:
                continue
            bad.append((a, b))
    return bad


def _random_calls(rng):
    """A random kernel graph as pipeline._plan lists it, every workspace tensor at its own offset (Relax's plan
    without reuse), with random in-place declarations: chains, skips read much later, scratch buffers."""
    n = int(rng.integers(2, 14))
    calls, inplace, made, off = [], {}, [], 0
    for i in range(n):
        k = "k%d" % i
        args = []
        for _ in range(int(rng.integers(1, 3))):
            if made and rng.random() < 0.85:
                # mostly the latest tensor, sometimes an older one (a skip connection)
                t = made[-1] if rng.random() < 0.6 else made[int(rng.integers(0, len(made)))]
                args.append(("ws", t))
            else:
                args.append(("input",))
        args.append(("const", "w%d" % i))
        if rng.random() < 0.5:
            args.append(("scratch", 10 ** 7 + 64 * i, int(rng.integers(1, 300))))
        nb = int(rng.integers(1, 5000))
        last = i == n - 1 and rng.random() < 0.7
        args.append(("output",) if last else ("ws", off))
        if not last:
            made.append(off)
            off += nb
        calls.append((k, args, nb))
        decl = [(j, int(rng.choice([0, 0, -1, -int(rng.integers(1, 3000)), int(rng.integers(1, 3000))])))
                for j, a in enumerate(args[:-1]) if a[0] == "ws" and rng.random() < 0.7]
        if decl:
            inplace[k] = decl
    copies = [] if calls[-1][1][-1] == ("output",) else [(("output",), calls[-1][1][-1], calls[-1][2])]
    relax = off + 10 ** 6        # never the smaller one
    return calls, copies, inplace, relax


def test_random_call_lists_never_overlap_live_tensors():
    rng = np.random.default_rng(23)
    improved = 0
    for case in range(400):
        calls, copies, inplace, relax = _random_calls(rng)
        r = memplan.replan(calls, copies, inplace, relax)
        if r is None:
            continue
        new_calls, new_copies, size = r
        improved += 1
        assert _independent_overlaps(calls, new_calls, copies, new_copies, inplace) == [], case
        memplan.check(calls, new_calls, copies, new_copies, inplace)      # the pipeline's own check agrees
        ends = [a[1] + a[2] for _, args, _ in new_calls for a in args if a[0] == "scratch"]
        ends += [args[-1][1] + nb for _, args, nb in new_calls if args[-1][0] == "ws"]
        assert all(a[1] % memplan.ALIGN == 0 for _, args, _ in new_calls for a in args if a[0] in ("ws", "scratch"))
        assert max(ends + [0]) <= size
    assert improved > 300


def test_check_refuses_a_placement_that_overlaps_a_live_tensor():
    calls = [("k1", [("input",), ("ws", 0)], 1024),
             ("k2", [("ws", 0), ("ws", 1024)], 1024),
             ("add", [("ws", 0), ("ws", 1024), ("output",)], 16)]
    bad = [("k1", [("input",), ("ws", 0)], 1024),
           ("k2", [("ws", 0), ("ws", 512)], 1024),          # overlaps its input, which stays alive for the ADD
           ("add", [("ws", 0), ("ws", 512), ("output",)], 16)]
    with pytest.raises(memplan.PlanError):
        memplan.check(calls, bad, [], [], {"k2": [(0, 1024)]})
    assert _independent_overlaps(calls, bad, [], [], {"k2": [(0, 1024)]}) != []


def _run_in_place(n_in, n_out, delta, kernel, rng, in_itemsize=1):
    """Run `kernel(read, write)` with the output at input + delta in one byte array and out of place; both
    outputs must be equal (a write that clobbers a byte still to be read changes the result)."""
    lo = max(0, -delta) + 8
    mem = rng.integers(-128, 128, lo + max(n_in, delta + n_out) + 16).astype(np.int64)
    src = mem[lo:lo + n_in].copy()
    ref = np.zeros(n_out, np.int64)
    kernel(lambda i: src[i], ref.__setitem__)
    kernel(lambda i: mem[lo + i], lambda j, v: mem.__setitem__(lo + delta + j, v))
    return np.array_equal(mem[lo + delta:lo + delta + n_out], ref)


def test_gather_and_pool_deltas_hold_for_their_loop_order():
    rng = np.random.default_rng(5)
    for _ in range(60):
        H, W, C = (int(v) for v in rng.integers(1, 6, 3))
        pads = [(0, 0)] + [(int(rng.integers(0, 3)), int(rng.integers(0, 3))) for _ in range(3)]
        shape = (1, H, W, C)
        oshape = tuple(d + a + b for d, (a, b) in zip(shape, pads))
        src = np.full(oshape, -1, np.int64)
        src[tuple(slice(a, a + d) for (a, _), d in zip(pads, shape))] = np.arange(H * W * C).reshape(shape)
        src = src.ravel()
        for e in (1, 2):               # int8 and int16 elements: bytes, both halves read before written
            delta = memplan.inplace_delta_gather(src, e, e)

            def pad(read, write):
                for j, s in enumerate(src):
                    v = [read(s * e + b) for b in range(e)] if s >= 0 else [99] * e
                    for b in range(e):
                        write(j * e + b, v[b])
            for d in (delta, delta - 1, memplan._down(delta)):
                assert _run_in_place(H * W * C * e, src.size * e, d, pad, rng), (shape, pads, e, d)
        KH, KW, SH, SW = (int(v) for v in rng.integers(1, 4, 4))
        same = bool(rng.integers(0, 2))
        OH = -(-H // SH) if same else max(1, (H - KH) // SH + 1)
        OW = -(-W // SW) if same else max(1, (W - KW) // SW + 1)
        if not same and (KH > H or KW > W):
            continue
        PT = max((OH - 1) * SH + KH - H, 0) // 2 if same else 0
        PL = max((OW - 1) * SW + KW - W, 0) // 2 if same else 0
        delta = memplan.inplace_delta_pool(H, W, C, OH, OW, SH, SW, PT, PL)

        def pool(read, write):
            for oh in range(OH):
                for ow in range(OW):
                    for c in range(C):
                        taps = [read((ih * W + iw) * C + c) for ih in range(oh * SH - PT, oh * SH - PT + KH)
                                for iw in range(ow * SW - PL, ow * SW - PL + KW) if 0 <= ih < H and 0 <= iw < W]
                        write((oh * OW + ow) * C + c, max(taps) if taps else -128)
        assert _run_in_place(H * W * C, OH * OW * C, delta, pool, rng), (H, W, C, KH, KW, SH, SW, PT, PL)


def test_elementwise_deltas_hold_under_broadcasting():
    rng = np.random.default_rng(8)
    for _ in range(60):
        oshape = tuple(int(v) for v in rng.integers(1, 5, int(rng.integers(1, 5))))
        ishape = tuple(d if rng.random() < 0.6 else 1 for d in oshape[int(rng.integers(0, len(oshape))):])
        for ei, eo in ((1, 1), (2, 2), (1, 2), (2, 1)):
            delta = memplan.inplace_delta_broadcast(ishape, oshape, ei, eo)
            src = np.broadcast_to(np.arange(int(np.prod(ishape))).reshape(ishape), oshape).ravel()

            def ew(read, write):
                for j, s in enumerate(src):
                    v = sum(read(s * ei + b) for b in range(ei))
                    for b in range(eo):
                        write(j * eo + b, v + b)
            assert _run_in_place(int(np.prod(ishape)) * ei, src.size * eo, delta, ew, rng), (ishape, oshape, ei, eo)
            if ishape == oshape and ei == eo:
                assert delta == 0


def test_conv_and_depthwise_deltas_hold_for_the_microkernels_order():
    """tvmgen_mk_conv copies the windows of two pixels to its scratch, then writes both pixels' OC outputs;
    tvmgen_mk_dwconv reads a pixel's taps (per group of four channels, in pairs of pixels) before it writes them:
    modelled pixel by pixel here, the unit the delta is computed for."""
    rng = np.random.default_rng(11)
    for _ in range(40):
        H, W = (int(v) for v in rng.integers(1, 7, 2))
        C, OC = (int(v) for v in rng.integers(1, 6, 2))
        K = int(rng.choice([1, 3]))
        S = int(rng.integers(1, 3))
        P = K // 2
        OH, OW = (H + 2 * P - K) // S + 1, (W + 2 * P - K) // S + 1
        wts = rng.integers(-3, 4, (OC, K, K, C))

        def window(read, oh, ow):
            return np.array([[[read((ih * W + iw) * C + c) if 0 <= ih < H and 0 <= iw < W else 0
                               for c in range(C)] for iw in range(ow * S - P, ow * S - P + K)]
                             for ih in range(oh * S - P, oh * S - P + K)])

        def conv(read, write):
            pix = [(oh, ow) for oh in range(OH) for ow in range(OW)]
            for b in range(0, len(pix), 2):
                cols = [(p, window(read, *pix[p])) for p in range(b, min(b + 2, len(pix)))]
                for p, col in cols:
                    for oc in range(OC):
                        write(p * OC + oc, int((col * wts[oc]).sum()))

        d = memplan.inplace_delta_conv(H, W, C, OH, OW, OC, S, S, P, P)
        if d is not None:
            assert _run_in_place(H * W * C, OH * OW * OC, d, conv, rng), (H, W, C, OC, K, S, d)

        def dw(read, write):
            for oh in range(OH):
                for ow in range(OW):
                    col = window(read, oh, ow)
                    for c in range(C):
                        write((oh * OW + ow) * C + c, int((col[:, :, c] * wts[0, :, :, c % C]).sum()))

        d = memplan.inplace_delta_depthwise(H, W, C, OH, OW, S, S, P, P)
        assert _run_in_place(H * W * C, OH * OW * C, d, dw, rng), (H, W, C, K, S, d)


SHARED = os.path.normpath(os.path.join(ROOT, "..", "shared", "models"))
# TFLite Micro + CMSIS-NN's smallest working arena (../shared/peers/tflm_m4.sh, bisected, 2026-12-06)
PEER_ARENA = {"st_mobilenet_v2_0.35_128_plantvillage_int8": 466408, "kws_ref_model": 22824,
              "st_miniresnet_1stacks_64x50_esc10_int8": 115936, "st_ign_wl_48_mobility_int8": 4572,
              "st_stmnist_v1_emnist_int8": 12860}


@pytest.mark.parametrize("name", sorted(PEER_ARENA) + ["vww_96_int8", "pretrainedResnet_quant"])
def test_shared_model_plans_are_sound_and_small(name, monkeypatch):
    """The placement the pipeline keeps for a real model passes the independent overlap check against Relax's
    call list, and workspace + input + output stays within 0.7x TFLM's arena (bench/mcu.py's RAM)."""
    from codegen.frontend import reader
    from codegen.lowering import pipeline
    path = os.path.join(SHARED, name + ".tflite")
    if not os.path.isfile(path):
        pytest.skip(f"{SHARED} absent (the shared models folder is not beside this checkout)")
    seen = []
    real = memplan.replan

    def spy(calls, copies, inplace, relax_size):
        r = real(calls, copies, inplace, relax_size)
        seen.append((calls, copies, inplace, r))
        return r
    monkeypatch.setattr(memplan, "replan", spy)
    lw = pipeline.lower(reader.load(path))
    calls, copies, inplace, r = seen[0]
    assert r is not None and (lw.calls, lw.copies, lw.workspace_size) == r
    # Relax's plan reuses offsets; make every tensor's offset its own (the checker knows a tensor by it)
    uniq, fresh, n = {}, [], 0
    for i, (k, args, nb) in enumerate(calls):
        new = []
        for a in args[:-1]:
            new.append(("ws", uniq[a[1]]) if a[0] == "ws" else a)
        if args[-1][0] == "ws":
            uniq[args[-1][1]] = n
            new.append(("ws", n))
            n += nb
        else:
            new.append(args[-1])
        fresh.append((k, new, nb))
    fresh_copies = [(d, ("ws", uniq[s[1]]) if s[0] == "ws" else s, nb) for d, s, nb in copies]
    assert _independent_overlaps(fresh, lw.calls, fresh_copies, lw.copies, inplace) == []
    if name in PEER_ARENA:
        ram = lw.workspace_size + lw.inputs[0].size_bytes + lw.outputs[0].size_bytes
        assert ram <= 0.7 * PEER_ARENA[name], (ram, PEER_ARENA[name])
