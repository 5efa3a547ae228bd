"""s_tir schedules shared by the op families: each kernel needs no temporary buffer, and register tiles keep
the accumulators of a small output tile in locals that the C compiler puts in registers (see the conv family)."""

def sched_reduction(sch, n_spatial):
    """acc (reduction) + out (epilogue): put the epilogue inside the innermost spatial
    loop of the reduction and hoist the init, so acc becomes a single scalar."""
    acc = sch.get_sblock("acc")
    out = sch.get_sblock("out")
    loops = sch.get_loops(acc)
    sch.reverse_compute_at(out, loops[n_spatial - 1])
    loops = sch.get_loops(acc)
    if len(loops) > n_spatial:
        sch.decompose_reduction(acc, loops[n_spatial])


def factor(n, choices):
    for c in choices:
        if n % c == 0:
            return c
    return 1


def unroll_all(sch, loops):
    for lp in loops:
        sch.unroll(lp)


def sched_tiled(sch, tiles, red, red_inner, n_spatial=4):
    """Register tiling: acc loops = [n, oh, ow, oc, *red] (`n_spatial` spatial loops, 4 for NHWC); `tiles` =
    [(loop index, factor)]
    splits spatial loops into outer/inner; the inner parts go below the reduction and are
    unrolled together with the epilogue, so the accumulators are a small constant-indexed
    local array that the C compiler keeps in registers."""
    acc = sch.get_sblock("acc")
    epilogue = []
    for name in ("biased", "high", "out"):
        try:
            epilogue.append(sch.get_sblock(name))
        except Exception:  # noqa: BLE001 (stage absent)
            pass
    loops = list(sch.get_loops(acc))
    sp, rl = loops[:n_spatial], loops[n_spatial:]
    outer, inner = list(sp), []
    for idx, fac in tiles:
        o, i = sch.split(sp[idx], factors=[None, fac])
        outer[idx] = o
        inner.append(i)
    r_outer, r_inner = [], []
    for k, lp in enumerate(rl):
        fac = red_inner.get(k)
        if fac:
            o, i = sch.split(lp, factors=[None, fac])
            r_outer.append(o)
            r_inner.append(i)
        elif k in red:
            r_inner.append(lp)
        else:
            r_outer.append(lp)
    sch.reorder(*outer, *r_outer, *r_inner, *inner)
    for blk in epilogue:
        sch.reverse_compute_at(blk, outer[-1])
    init = sch.decompose_reduction(acc, r_outer[0] if r_outer else r_inner[0])
    unroll_all(sch, r_inner + inner)
    unroll_all(sch, list(sch.get_loops(init))[n_spatial:])
    for blk in epilogue:
        unroll_all(sch, list(sch.get_loops(blk))[n_spatial:])


def sched_pointwise(sch, OW, OC, C, unroll, oc_tile=(2,)):
    pw = factor(OW, (2,))
    oc = factor(OC, oc_tile)
    u = factor(C, unroll)
    tiles = [(2, pw)] if pw > 1 else []
    if oc > 1:
        tiles.append((3, oc))
    sched_tiled(sch, tiles, set(), {0: u} if u > 1 else {})


def sched_depthwise(sch, OC):
    """Depthwise: all taps unrolled, 8 channels per tile (one padding check per tap serves
    all of them)."""
    oc = factor(OC, (8, 4, 2))
    sched_tiled(sch, [(3, oc)] if oc > 1 else [], {0, 1}, {})


def sched_conv(sch, OW, OC, taps):
    """General convolution (the first layer: few input channels): a 2-pixel x 4-channel
    register tile (each input value feeds 4 accumulators, each weight 2); small kernels
    are unrolled completely."""
    pw = factor(OW, (2,))
    oc = factor(OC, (4, 2))
    red = {0, 1, 2} if taps <= 32 else {2}
    tiles = ([(2, pw)] if pw > 1 else []) + ([(3, oc)] if oc > 1 else [])
    sched_tiled(sch, tiles, red, {})


