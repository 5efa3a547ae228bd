"""The QEMU plugin's Cortex-M4 cycle estimate (codegen/runners/baremetal/insn_count_plugin.c) on hand-written
Thumb-2 loops whose cost follows from the Cortex-M4 TRM's instruction timings by hand.

Each kernel is a loop; the firmware runs every kernel inside its own instruction-count region (the plugin's
each=1), once with N1 and once with N2 iterations, so the difference per extra iteration is exactly the loop
body's cost, free of call and setup overhead. A wrong class (a load not pipelined, a divide at 1 cycle, a branch
taken when it fell through, an IT-block return charged statically) changes a per-iteration figure.
"""
import shutil

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


def _per_kernel(elf, ws=0):
    res = qemu.count_region(elf, timeout_s=30, flash_wait_states=ws, each_region=True)
    assert res["count"] == len(KERNELS) and len(res["regions"]) == len(KERNELS)
    return res


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
