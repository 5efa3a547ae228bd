"""The QEMU plugin's Cortex-M4 cycle estimate (codegen/runners/baremetal/insn_count_plugin.c) on hand-written
Thumb-2 loops whose cost follows from the Cortex-M4 TRM's instruction timings by hand.

Each kernel is a loop; the firmware runs every kernel inside its own instruction-count region (the plugin's
each=1), once with N1 and once with N2 iterations, so the difference per extra iteration is exactly the loop
body's cost, free of call and setup overhead. A wrong class (a load not pipelined, a divide at 1 cycle, a branch
taken when it fell through, an IT-block return charged statically) changes a per-iteration figure.
"""
import random
import re
import shutil
import subprocess

import pytest

from codegen.runners import qemu

pytestmark = pytest.mark.skipif(
    not (qemu.toolchain_available() and shutil.which("gcc")),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and host gcc (Debian: gcc-arm-none-eabi "
           "libnewlib-arm-none-eabi qemu-system-arm gcc)")

P = 2  # the plugin's default pipeline refill of a taken branch

# name, body of the loop (r0 counts down; r1, r2 are the kernel's arguments), helpers after the function,
# (args), instructions per iteration, estimated cycles per iteration (TRM), taken branches per iteration
KERNELS = [
    # LDR 2, LDR pipelined after an independent LDR 1, SMLAD 1, SUBS 1, BNE taken 1+P
    ("dot", "ldr r4, [r1], #4\n ldr r5, [r2], #4\n smlad r3, r4, r5, r3", "", ("buf_a", "buf_b"),
     5, 2 + 1 + 1 + 1 + (1 + P), 1),
    # the second LDR's base is the first one's destination: no pipelining, 2 + 2
    ("dependent_loads", "ldr r3, [r1]\n ldr r3, [r3]", "", ("&self_ptr", "0"), 4, 2 + 2 + 1 + (1 + P), 1),
    # LDM/STM of 4 registers: 1+N each
    ("ldm_stm", "ldmia r1, {r3, r4, r5, r12}\n stmia r2, {r3, r4, r5, r12}", "", ("buf_a", "buf_b"),
     4, 5 + 5 + 1 + (1 + P), 1),
    # SDIV, UDIV: the TRM's worst case 12 each
    ("divide", "sdiv r3, r1, r2\n udiv r3, r1, r2", "", ("1000", "7"), 4, 12 + 12 + 1 + (1 + P), 1),
    # CBZ and BEQ that fall through: 1 each
    ("not_taken", "cbz r1, 2f\n cmp r1, #0\n beq 2f", "", ("1", "0"), 5, 1 + 1 + 1 + 1 + (1 + P), 1),
    # BL 1+P, PUSH {r4, lr} 1+2, POP {r4, pc} 1+2+P
    ("call", "bl 3f", "3:\n push {r4, lr}\n pop {r4, pc}\n", ("0", "0"), 5,
     (1 + P) + 3 + (1 + 2 + P) + 1 + (1 + P), 3),
    # VDIV 14, VMLA 3, VADD 1, VSQRT 14
    ("vfp", "vdiv.f32 s0, s1, s2\n vmla.f32 s3, s4, s5\n vadd.f32 s6, s6, s7\n vsqrt.f32 s8, s9", "",
     ("0", "0"), 6, 14 + 3 + 1 + 14 + 1 + (1 + P), 1),
    # a return inside an IT block, taken (r1 != 0): BL 1+P, CMP 1, IT 1, BXNE 1+P
    ("it_return_taken", "bl 3f", "3:\n cmp r1, #0\n it ne\n bxne lr\n bx lr\n", ("1", "0"), 6,
     (1 + P) + 1 + 1 + (1 + P) + 1 + (1 + P), 3),
    # the same with r1 == 0: BXNE falls through (1), BX LR 1+P
    ("it_return_not_taken", "bl 3f", "3:\n cmp r1, #0\n it ne\n bxne lr\n bx lr\n", ("0", "0"), 7,
     (1 + P) + 1 + 1 + 1 + (1 + P) + 1 + (1 + P), 3),
]


def _firmware_source(iterations):
    asm, calls = [], []
    for name, body, helpers, args, *_ in KERNELS:
        asm.append(f"""
__asm__(".syntax unified\\n.thumb\\n.text\\n.global k_{name}\\n.type k_{name}, %function\\n.balign 4\\n"
"k_{name}:\\n push {{r4, r5, r6, lr}}\\n movs r3, #0\\n"
"1:\\n {body.replace(chr(10), chr(92) + 'n')}\\n subs r0, r0, #1\\n bne 1b\\n"
"2:\\n mov r0, r3\\n pop {{r4, r5, r6, pc}}\\n{helpers.replace(chr(10), chr(92) + 'n')}");
int k_{name}(int n, unsigned a, unsigned b);""")
        calls.append(f"  insn_region_begin();\n  k_{name}({iterations}, (unsigned)({args[0]}), "
                     f"(unsigned)({args[1]}));\n  insn_region_end();")
    return ("#include <stdio.h>\n#include \"baremetal.h\"\n"
            "static unsigned buf_a[8] = {1, 2, 3, 4, 5, 6, 7, 8}, buf_b[8];\n"
            "static void *self_ptr = &self_ptr;\n"
            + "\n".join(asm) + "\nint main(void) {\n" + "\n".join(calls) + "\n  printf(\"done\\n\");\n  return 0;\n}\n")


N1, N2 = 16, 48


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    d = tmp_path_factory.mktemp("cycles")
    elfs = {}
    for n in (N1, N2):
        main = d / f"kernels_{n}.c"
        main.write_text(_firmware_source(n))
        elfs[n] = qemu.build_firmware([], [], str(main), str(d / f"kernels_{n}.elf"), cflags=("-O1",))
    return elfs


_RUNS = {}


def _per_kernel(elf, ws=0):
    """One QEMU run per (firmware, wait states), shared by the tests of this module."""
    if (elf, ws) not in _RUNS:
        res = qemu.count_region(elf, timeout_s=30, flash_wait_states=ws, each_region=True)
        assert res["count"] == len(KERNELS) and len(res["regions"]) == len(KERNELS)
        _RUNS[elf, ws] = res
    return _RUNS[elf, ws]


@pytest.mark.parametrize("k", range(len(KERNELS)), ids=[k[0] for k in KERNELS])
def test_loop_body_costs_what_the_trm_says(firmware, k):
    name, _, _, _, insn, cycles, _ = KERNELS[k]
    a, b = _per_kernel(firmware[N1])["regions"][k], _per_kernel(firmware[N2])["regions"][k]
    assert (b["insn"] - a["insn"]) == (N2 - N1) * insn, name
    assert (b["cycles"] - a["cycles"]) == (N2 - N1) * cycles, (name, (b["cycles"] - a["cycles"]) / (N2 - N1))


def test_flash_wait_states_add_per_taken_branch(firmware):
    plain, slow = _per_kernel(firmware[N2]), _per_kernel(firmware[N2], ws=3)
    assert slow["instructions"] == plain["instructions"]
    for (name, *_, taken), a, b in zip(KERNELS, plain["regions"], slow["regions"]):
        assert a["insn"] == b["insn"]
        # every iteration's taken branches pay 3 more; call/return and the last (not taken) BNE add a few
        extra = b["cycles"] - a["cycles"]
        assert N2 * taken * 3 <= extra <= (N2 * taken + 4) * 3, name


def test_totals_and_regions_agree(firmware):
    res = _per_kernel(firmware[N1])
    assert res["total"] == sum(r["insn"] for r in res["regions"])
    assert res["cycles"]["total"] == sum(r["cycles"] for r in res["regions"])
    assert res["cycles"]["first"] == res["regions"][0]["cycles"]
    # a Cortex-M4 needs at least a cycle per instruction, and these loops more
    assert all(r["cycles"] > r["insn"] for r in res["regions"])
    run = qemu.run_firmware(firmware[N1], timeout_s=30, count_instructions=True)
    assert run["cycles"] >= run["instructions"] > 0 and run["regions"] == []
    # every cycle beyond one per instruction has a kind; these loops divide, use the FPU, load and branch
    kinds = run["cycle_breakdown"]
    assert run["cycles"] == run["instructions"] + sum(kinds.values())
    assert set(kinds) == {"loadstore", "branch", "divide", "fp", "other"}
    assert kinds["divide"] >= N1 * 2 * 11 and kinds["fp"] >= N1 * (13 + 2 + 13)
    assert kinds["branch"] >= N1 * len(KERNELS) * P and kinds["loadstore"] > 0


# --- the classifier on generated instructions --------------------------------------------------------------
# Every encoding class the cycle model distinguishes, generated with random registers, immediates, register lists
# and addressing modes, assembled by arm-none-eabi-as and decoded by the plugin's classifier (built with
# -DINSN_COUNT_SELFTEST): each must get the class the TRM gives its mnemonic. Expected tuples:
# (cycles without the branch refill, single load/store, writes the PC, conditional branch, IT block length).

LS, DP = (2, 1, 0, 0, 0), (1, 0, 0, 0, 0)
BRANCH, COND = (1, 0, 1, 0, 0), (1, 0, 1, 1, 0)


def _regs(rng, pool, k):
    return sorted(rng.sample(pool, k), key=lambda r: int(r[1:]))


def _vlist(kind, first, n):
    return f"{{{kind}{first}}}" if n == 1 else f"{{{kind}{first}-{kind}{first + n - 1}}}"


def _samples(rng):
    low = [f"r{i}" for i in range(8)]
    mid = [f"r{i}" for i in range(13)]
    out = []

    def add(asm, expected):
        out.append((asm, expected))

    for _ in range(6):
        rt, rn, rm = rng.sample(low, 3)
        add(f"{rng.choice(['ldr', 'str'])} {rt}, [{rn}, #{4 * rng.randrange(32)}]", LS)
        add(f"{rng.choice(['ldrb', 'strb'])} {rt}, [{rn}, #{rng.randrange(32)}]", LS)
        add(f"{rng.choice(['ldrh', 'strh'])} {rt}, [{rn}, #{2 * rng.randrange(32)}]", LS)
        add(f"{rng.choice(['ldr', 'str', 'ldrb', 'strb', 'ldrh', 'strh', 'ldrsb', 'ldrsh'])} {rt}, [{rn}, {rm}]", LS)
        add(f"{rng.choice(['ldr', 'str'])} {rt}, [sp, #{4 * rng.randrange(256)}]", LS)
        add(f"ldr {rt}, [pc, #{4 * rng.randrange(256)}]", LS)
        rt, rn, rm = rng.sample(mid, 3)
        op = rng.choice(["ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "str", "strb", "strh"])
        add(f"{op}.w {rt}, [{rn}, #{rng.randrange(4096)}]", LS)
        add(f"{op} {rt}, [{rn}, #-{rng.randrange(1, 256)}]", LS)
        add(f"{op} {rt}, [{rn}], #{rng.choice(['', '-'])}{rng.randrange(1, 256)}", LS)
        add(f"{op} {rt}, [{rn}, #{rng.randrange(1, 256)}]!", LS)
        add(f"{op}.w {rt}, [{rn}, {rm}, lsl #{rng.randrange(4)}]", LS)
        add(f"pld [{rn}, #{rng.randrange(4096)}]", LS)
        add(f"ldrex {rt}, [{rn}, #{4 * rng.randrange(256)}]", LS)
        add(f"strex {rm}, {rt}, [{rn}]", LS)
        rt, rt2 = rng.sample(mid, 2)
        base, offset = rng.choice(["sp", "r12"]), 4 * rng.randrange(-255, 256)
        add(f"{rng.choice(['ldrd', 'strd'])} {rt}, {rt2}, [{base}, #{offset}]", (3, 0, 0, 0, 0))
        rn = rng.choice(low)
        regs = _regs(rng, [r for r in low if r != rn], rng.randrange(1, 7))
        add(f"{rng.choice(['ldmia', 'stmia'])} {rn}!, {{{', '.join(regs)}}}", (1 + len(regs), 0, 0, 0, 0))
        regs = _regs(rng, low, rng.randrange(0, 8))
        lr = rng.random() < 0.5
        if regs or lr:
            add(f"push {{{', '.join(regs + (['lr'] if lr else []))}}}", (1 + len(regs) + lr, 0, 0, 0, 0))
            add(f"pop {{{', '.join(regs + (['pc'] if lr else []))}}}", (1 + len(regs) + lr, 0, int(lr), 0, 0))
        rn = rng.choice(mid)
        regs = _regs(rng, [r for r in mid if r != rn], rng.randrange(2, 12))
        add(f"{rng.choice(['ldmia.w', 'stmia.w', 'ldmdb', 'stmdb'])} {rn}, {{{', '.join(regs)}}}",
            (1 + len(regs), 0, 0, 0, 0))
        add(f"pop.w {{{', '.join(regs)}, pc}}", (2 + len(regs), 0, 1, 0, 0))
        add(f"push.w {{{', '.join(regs)}, lr}}", (2 + len(regs), 0, 0, 0, 0))

        d, a, b, c = rng.sample(mid, 4)
        for op in ("mul", "smulbb", "smultt", "smuad", "smusd", "smmul", "usad8", "sdiv", "udiv"):
            add(f"{op} {d}, {a}, {b}", (12, 0, 0, 0, 0) if op in ("sdiv", "udiv") else DP)
        for op in ("mla", "mls", "smlad", "smladx", "smlsd", "smlabb", "smlatb", "smlawb", "smmla", "usada8"):
            add(f"{op} {d}, {a}, {b}, {c}", DP)
        for op in ("smull", "umull", "smlal", "umlal", "smlald", "smlalbb", "umaal"):
            add(f"{op} {d}, {a}, {b}, {c}", DP)
        for op in ("add.w", "sub.w", "and.w", "orr.w", "eor.w", "bic.w", "orn", "adc.w", "sbc.w", "rsb.w",
                   "sadd16", "qadd8", "uadd8", "ssub16", "qsub", "sel", "uxtab", "sxtah"):
            add(f"{op} {d}, {a}, {b}", DP)
        for asm in (f"movw {d}, #{rng.randrange(65536)}", f"movt {d}, #{rng.randrange(65536)}",
                    f"ssat {d}, #{rng.randrange(1, 33)}, {a}", f"usat {d}, #{rng.randrange(32)}, {a}",
                    f"sxtb {d}, {a}", f"uxth {d}, {a}", f"clz {d}, {a}", f"rbit {d}, {a}", f"rev {d}, {a}",
                    f"ubfx {d}, {a}, #3, #5", f"bfi {d}, {a}, #2, #7", f"lsl.w {d}, {a}, {b}",
                    f"add.w {d}, {a}, #{rng.randrange(256)}", f"cmp.w {d}, {a}", f"mov {d}, {a}",
                    f"add {d}, {a}", f"cmp r{rng.randrange(8, 13)}, r{rng.randrange(8, 13)}", "nop", "dmb", "dsb"):
            add(asm, DP)
        add("isb", (1 + 2, 0, 0, 0, 0))

        s = [f"s{i}" for i in rng.sample(range(32), 3)]
        for op in ("vadd.f32", "vsub.f32", "vmul.f32", "vnmul.f32"):
            add(f"{op} {s[0]}, {s[1]}, {s[2]}", DP)
        for op in ("vmla.f32", "vmls.f32", "vnmla.f32", "vnmls.f32", "vfma.f32", "vfms.f32", "vfnma.f32", "vfnms.f32"):
            add(f"{op} {s[0]}, {s[1]}, {s[2]}", (3, 0, 0, 0, 0))
        add(f"vdiv.f32 {s[0]}, {s[1]}, {s[2]}", (14, 0, 0, 0, 0))
        add(f"vsqrt.f32 {s[0]}, {s[1]}", (14, 0, 0, 0, 0))
        for asm in (f"vabs.f32 {s[0]}, {s[1]}", f"vneg.f32 {s[0]}, {s[1]}", f"vcmp.f32 {s[0]}, {s[1]}",
                    f"vcmpe.f32 {s[0]}, #0", f"vcvt.s32.f32 {s[0]}, {s[1]}", f"vcvt.f32.u32 {s[0]}, {s[1]}",
                    f"vmov.f32 {s[0]}, {s[1]}", f"vmov.f32 {s[0]}, #1.0", f"vmov {s[0]}, {a}", f"vmov {a}, {s[0]}",
                    "vmrs APSR_nzcv, fpscr"):
            add(asm, DP)
        i = rng.randrange(31)
        add(f"vmov {a}, {b}, s{i}, s{i + 1}", (2, 0, 0, 0, 0))
        add(f"vmov s{i}, s{i + 1}, {a}, {b}", (2, 0, 0, 0, 0))
        add(f"{rng.choice(['vldr', 'vstr'])} {s[0]}, [{a}, #{4 * rng.randrange(-255, 256)}]", (2, 0, 0, 0, 0))
        add(f"{rng.choice(['vldr', 'vstr'])} d{rng.randrange(16)}, [{a}, #{4 * rng.randrange(-255, 256)}]",
            (2, 0, 0, 0, 0))
        first, n = rng.randrange(16), rng.randrange(1, 9)
        add(f"{rng.choice(['vpush', 'vpop'])} {_vlist('s', first, n)}", (1 + n, 0, 0, 0, 0))
        add(f"{rng.choice(['vldmia', 'vstmia'])} {a}!, {_vlist('s', first, n)}", (1 + n, 0, 0, 0, 0))
        first, n = rng.randrange(8), rng.randrange(1, 5)
        add(f"{rng.choice(['vpush', 'vpop'])} {_vlist('d', first, n)}", (1 + 2 * n, 0, 0, 0, 0))

        cond = rng.choice(["eq", "ne", "lt", "ge", "hi", "ls", "mi", "pl"])
        for asm in ("b.n 2f", "b.w 2f", "bl 2f", "bx lr", f"blx {a}", "mov pc, lr", f"add pc, {a}",
                    f"ldr pc, [sp], #4", f"ldr.w pc, [{a}, #{rng.randrange(4096)}]"):
            add(asm, (2, 1, 1, 0, 0) if asm.startswith("ldr") else BRANCH)
            add("nop\n2:", DP)   # the target: gas turns a CBZ to the very next instruction into a NOP
        for asm in (f"b{cond}.n 2f", f"b{cond}.w 2f", f"cbz {rng.choice(low)}, 2f", f"cbnz {rng.choice(low)}, 2f"):
            add(asm, COND)
            add("nop\n2:", DP)
        add(f"tbb [{a}, {b}]", (2, 0, 1, 0, 0))
        add(f"tbh [{a}, {b}, lsl #1]", (2, 0, 1, 0, 0))
        pattern = "".join(rng.choice("te") for _ in range(rng.randrange(4)))
        inverse = {"eq": "ne", "ne": "eq", "lt": "ge", "ge": "lt", "hi": "ls", "ls": "hi", "mi": "pl", "pl": "mi"}
        add(f"it{pattern} {cond}", (1, 0, 0, 0, 1 + len(pattern)))
        for c in "t" + pattern:
            add(f"mov{cond if c == 't' else inverse[cond]} {rng.choice(low)}, {rng.choice(low)}", DP)
    return out


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    d = tmp_path_factory.mktemp("classifier")
    exe = str(d / "classify")
    subprocess.run(["gcc", "-O2", "-DINSN_COUNT_SELFTEST", "-fno-pie", "-no-pie", qemu.PLUGIN_SRC, "-o", exe,
                    "-Wl,--unresolved-symbols=ignore-all"], check=True)
    return d, exe


def _encodings(d, lines):
    src = d / "samples.s"
    src.write_text(".syntax unified\n.thumb\n.text\n.balign 4\n" + "\n".join(lines) + "\n")
    obj = str(d / "samples.o")
    subprocess.run(["arm-none-eabi-as", "-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mthumb", str(src), "-o", obj],
                   check=True)
    dump = subprocess.run(["arm-none-eabi-objdump", "-d", obj], capture_output=True, text=True, check=True).stdout
    return [(m.group(1), m.group(3)) for m in re.finditer(r"^\s*[0-9a-f]+:\t([0-9a-f]{4}( [0-9a-f]{4})?)\s*\t(.*)$",
                                                          dump, re.M)]


@pytest.mark.parametrize("seed", range(3))
def test_classifier_on_generated_instructions(classifier, seed):
    d, exe = classifier
    samples = _samples(random.Random(seed))
    encodings = _encodings(d, [asm for asm, _ in samples])
    # objdump shows the section's alignment padding at the end as a NOP
    assert len(encodings) >= len(samples) and all(dis == "nop" for _, dis in encodings[len(samples):])
    encodings = encodings[:len(samples)]
    got = subprocess.run([exe], input="\n".join(e for e, _ in encodings) + "\n", capture_output=True, text=True,
                         check=True).stdout.splitlines()
    wrong = [f"{asm!r} ({enc}, {dis}): {line}, expected {' '.join(map(str, exp))}"
             for (asm, exp), (enc, dis), line in zip(samples, encodings, got)
             if tuple(int(x) for x in line.split()) != exp]
    assert not wrong, "\n".join(wrong[:20])
