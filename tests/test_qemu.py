"""codegen.runners.qemu: firmware for the emulated Cortex-M4F (mps2-an386) prints the same bytes as the host build, the
instruction count is deterministic and scales with the work done, and faults or hangs end with QemuError."""
import os
import random
import shutil
import subprocess
import time

import pytest

from codegen.runners import qemu
from codegen.errors import PipelineError

pytestmark = pytest.mark.skipif(
    not (qemu.toolchain_available() and shutil.which("gcc")),
    reason="needs arm-none-eabi-gcc, qemu-system-arm and host gcc (Debian: gcc-arm-none-eabi "
           "libnewlib-arm-none-eabi qemu-system-arm gcc)")

N_IN, N_OUT = 64, 10


def _model_sources(d):
    """A tiny quantized dense layer: int8 weights, int32 accumulate, float requantization, uint8 outputs."""
    rng = random.Random(1234)
    weights = ",\n".join("{" + ",".join(str(rng.randint(-128, 127)) for _ in range(N_IN)) + "}"
                         for _ in range(N_OUT))
    bias = ",".join(str(rng.randint(-2000, 2000)) for _ in range(N_OUT))
    inputs = ",".join(str(rng.randint(-128, 127)) for _ in range(N_IN))
    header = d / "model.h"
    header.write_text(f"""#include <stdint.h>
#define N_IN {N_IN}
#define N_OUT {N_OUT}
void model_run(const int8_t *in, uint8_t *out);
""")
    model = d / "model.c"
    model.write_text(f"""#include <math.h>
#include "model.h"
static const int8_t W[N_OUT][N_IN] = {{
{weights}
}};
static const int32_t B[N_OUT] = {{{bias}}};
void model_run(const int8_t *in, uint8_t *out)
{{
    for (int o = 0; o < N_OUT; o++) {{
        int32_t acc = B[o];
        for (int i = 0; i < N_IN; i++) {{
            acc += (int32_t)in[i] * W[o][i];
        }}
        int32_t v = (int32_t)nearbyintf((float)acc * 0.00371f) + 128;
        out[o] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
    }}
}}
""")
    main = d / "main.c"
    main.write_text(f"""#include <stdio.h>
#include "model.h"
#ifdef __arm__
#include "baremetal.h"
#else
static void insn_region_begin(void) {{}}
static void insn_region_end(void) {{}}
#endif
#ifndef ITERATIONS
#define ITERATIONS 1
#endif
static const int8_t input[N_IN] = {{{inputs}}};
static uint8_t output[N_OUT];
int main(void)
{{
    for (int it = 0; it < ITERATIONS; it++) {{
        insn_region_begin();
        model_run(input, output);
        insn_region_end();
    }}
    for (int o = 0; o < N_OUT; o++) {{
        printf("%u ", (unsigned)output[o]);
    }}
    printf("\\n");
    return 0;
}}
""")
    return str(main), [str(model)]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("qemu")


@pytest.fixture(scope="module")
def sources(workdir):
    return _model_sources(workdir)


@pytest.fixture(scope="module")
def plugin(workdir):
    return qemu.build_plugin(str(workdir / "insn_count_plugin.so"))


def _build(workdir, sources, iterations):
    main_c, c_sources = sources
    return qemu.build_firmware(c_sources, [str(workdir)], main_c, str(workdir / f"model_{iterations}.elf"),
                               cflags=("-O2", f"-DITERATIONS={iterations}"))


def _host_output(workdir, sources):
    main_c, c_sources = sources
    exe = str(workdir / "model_host")
    subprocess.run(["gcc", "-O2", "-I", str(workdir), main_c, *c_sources, "-o", exe, "-lm"], check=True)
    return subprocess.run([exe], capture_output=True, check=True).stdout.decode()


def test_output_matches_host_build(workdir, sources):
    elf = _build(workdir, sources, 1)
    res = qemu.run_firmware(elf, timeout_s=30)
    assert res["exit_code"] == 0, res
    assert res["instructions"] is None
    host = _host_output(workdir, sources)
    assert len(host.split()) == N_OUT
    assert res["stdout"] == host


def test_instruction_count_is_deterministic_and_scales(workdir, sources, plugin):
    elf1, elf3 = _build(workdir, sources, 1), _build(workdir, sources, 3)
    a = qemu.run_firmware(elf1, timeout_s=30, count_instructions=True, plugin_so=plugin)
    b = qemu.run_firmware(elf1, timeout_s=30, count_instructions=True, plugin_so=plugin)
    c = qemu.run_firmware(elf3, timeout_s=30, count_instructions=True, plugin_so=plugin)
    assert a["exit_code"] == b["exit_code"] == c["exit_code"] == 0
    assert isinstance(a["instructions"], int) and a["instructions"] > 0
    assert a["instructions"] == b["instructions"]
    assert a["region"] == b["region"]
    assert a["stdout"] == c["stdout"]  # same outputs whatever the iteration count

    # One region per call; every call costs the same, at least N_IN * N_OUT multiply-accumulates. The region also
    # holds the few instructions of main between the markers, which depend on how gcc laid out (unrolled) the loop.
    per_call = a["region"]["first"]
    assert a["region"]["count"] == 1 and c["region"]["count"] == 3
    assert c["region"]["max"] - c["region"]["min"] <= 8
    assert abs(c["region"]["first"] - per_call) <= 8
    assert per_call > N_IN * N_OUT
    # Two more calls cost about two calls more (the loop and marker calls add a few instructions each).
    diff = c["instructions"] - a["instructions"]
    assert abs(diff - 2 * per_call) <= 2 * 20, (diff, per_call)


def test_count_region_and_instructions_per_call(workdir, sources, plugin):
    region = qemu.count_region(_build(workdir, sources, 2), timeout_s=30, plugin_so=plugin)
    assert region["count"] == 2 and region["min"] <= region["first"] <= region["max"]
    assert region["total"] == region["min"] + region["max"] and region["max"] - region["min"] <= 8
    build = lambda n: _build(workdir, sources, n)  # noqa: E731
    # From 0 calls: the printed outputs change from zeros to real values, which costs some printf instructions.
    per = qemu.instructions_per_call(build, 4, timeout_s=30, plugin_so=plugin)
    assert per["iterations"] == 4 and per["total"] > per["base"] > 0
    assert abs(per["per_call"] - region["first"]) <= 0.05 * region["first"], (per, region)
    # From 1 call the output is the same in both builds, so the difference is the calls (and loop) alone.
    per = qemu.instructions_per_call(build, 2, base_iterations=1, timeout_s=30, plugin_so=plugin)
    assert abs(per["per_call"] - region["first"]) <= 8, (per, region)


def test_default_plugin_is_built_on_demand(workdir, sources):
    res = qemu.run_firmware(_build(workdir, sources, 1), timeout_s=30, count_instructions=True)
    assert res["instructions"] > 0


def _tiny_firmware(workdir, name, body):
    main = workdir / f"{name}.c"
    main.write_text("#include <stdio.h>\n" + body)
    return qemu.build_firmware([], [], str(main), str(workdir / f"{name}.elf"))


def test_hard_fault_raises_instead_of_hanging(workdir):
    elf = _tiny_firmware(workdir, "fault", """
int main(void)
{
    printf("before fault\\n");
    return *(volatile int *)0xF0000000u;
}
""")
    start = time.monotonic()
    with pytest.raises(qemu.QemuError) as info:
        qemu.run_firmware(elf, timeout_s=20)
    assert time.monotonic() - start < 10
    msg = str(info.value)
    assert "fault.elf" in msg and "HardFault" in msg and "bfar=0xf0000000" in msg
    assert isinstance(info.value, PipelineError)


def test_endless_loop_times_out(workdir):
    elf = _tiny_firmware(workdir, "spin", """
int main(void)
{
    printf("spinning\\n");
    for (;;) {
        __asm__ volatile("");
    }
}
""")
    start = time.monotonic()
    with pytest.raises(qemu.QemuError) as info:
        qemu.run_firmware(elf, timeout_s=2, count_instructions=False)
    assert time.monotonic() - start < 10
    assert "spin.elf" in str(info.value) and "2 s" in str(info.value)


def test_nonzero_exit_code_is_returned(workdir):
    elf = _tiny_firmware(workdir, "exit7", "int main(void) { printf(\"bye\\n\"); return 7; }\n")
    res = qemu.run_firmware(elf, timeout_s=20)
    assert res["exit_code"] == 7 and res["stdout"] == "bye\n"


def test_compile_error_raises(workdir):
    main = workdir / "broken.c"
    main.write_text("int main(void) { return undefined_symbol; }\n")
    with pytest.raises(qemu.QemuError, match="broken"):
        qemu.build_firmware([], [], str(main), str(workdir / "broken.elf"))
    assert not os.path.exists(workdir / "broken.elf")


# TVM codegen and Cortex-M4 builds run in QEMU: minutes; `pytest -m "not heavy"` skips this module.
pytestmark = [pytestmark, pytest.mark.heavy]
