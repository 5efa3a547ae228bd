"""Using the project from somewhere else: the pip-installed SCons tool in a throw-away firmware repo, the C
library export (host gcc, CMake, arm-none-eabi-gcc on QEMU), and a build cache shared by two checkouts."""
import json
import os
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT, TINY, built_stages, scons_exe

pytestmark = pytest.mark.heavy

MAIN_C = r"""
#include <stdio.h>
#include "tvmgen_default.h"
#include "images.h"

static const uint8_t* const images[] = {image_car, image_other};
static const char* const titles[] = {"car", "other"};

int main(void) {
  uint8_t out[TVMGEN_DEFAULT_OUTPUT_SIZE];
  for (int i = 0; i < 2; i++) {
    if (tvmgen_default_run(images[i], out) != 0) return 3;
    printf("%s results:\n", titles[i]);
    for (int k = 0; k < TVMGEN_DEFAULT_OUTPUT_SIZE; k++) printf(k ? ", %d" : "%d", out[k]);
    printf("\n");
  }
  return 0;
}
"""

FIRMWARE_SCONSTRUCT = """
import tinyml_scons
env = Environment(tools=["default", "tinyml"], toolpath=[tinyml_scons.TOOLPATH])
mlf = env.TinyMLF("build", "model.tflite")
lib = env.TinyCLibrary("build/model_lib", mlf)
images = env.TinyImages("build", ["car.png", "other.png"], "model.tflite")
env.TinyExpected("build", "model.tflite", images[2])
sources = [n for n in lib if str(n).endswith(".c")]
env.Program("build/app", ["main.c", images[0]] + sources, CPPPATH=["build/model_lib/include", "build"], LIBS=["m"])
"""


@pytest.fixture(scope="module")
def installed_tool(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--target", str(site), ROOT], check=True, capture_output=True, timeout=300)
    # setuptools leaves its build/ scratch in the checkout; ours is the build output dir: clean only its part.
    for scratch in ("lib", "bdist.linux-x86_64"):
        shutil.rmtree(os.path.join(ROOT, "build", scratch), ignore_errors=True)
    assert (site / "tinyml_scons" / "site_tools" / "tinyml.py").is_file()
    assert (site / "codegen" / "_templates" / "sketch" / "sketch.ino.j2").is_file()
    return site


@pytest.fixture(scope="module")
def firmware_repo(tiny_build, installed_tool, tmp_path_factory):
    build, _ = tiny_build
    repo = tmp_path_factory.mktemp("firmware")
    shutil.copy(build / "nano33ble" / "model.tflite", repo / "model.tflite")
    shutil.copy(build / "nano33ble" / "heldout" / "target.png", repo / "car.png")
    shutil.copy(build / "nano33ble" / "heldout" / "random.png", repo / "other.png")
    (repo / "main.c").write_text(MAIN_C)
    (repo / "SConstruct").write_text(FIRMWARE_SCONSTRUCT)
    env = {**os.environ, "PYTHONPATH": str(installed_tool)}
    proc = subprocess.run([scons_exe(), "-C", str(repo)], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the installed copy served the build, not this checkout
    assert str(installed_tool) in subprocess.run(
        [sys.executable, "-c", "import codegen, sys; print(codegen.__file__)"], capture_output=True, text=True,
        env=env, cwd=str(repo)).stdout
    expected = json.loads((repo / "build" / "expected.json").read_text())
    want = "".join(f"{t} results:\n" + ", ".join(map(str, e["scores"])) + "\n"
                   for t, e in zip(("car", "other"), expected["images"]))
    return repo, want


def test_firmware_repo_builds_and_runs_with_installed_tool(firmware_repo):
    repo, want = firmware_repo
    out = subprocess.run([str(repo / "build" / "app")], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout == want


def test_exported_library_builds_with_cmake(firmware_repo, tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake not installed")
    repo, want = firmware_repo
    (tmp_path / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.13)\nproject(app C)\n"
        f"add_subdirectory({repo / 'build' / 'model_lib'} model_lib)\n"
        f"add_executable(app {repo / 'main.c'} {repo / 'build' / 'images.c'})\n"
        f"target_include_directories(app PRIVATE {repo / 'build'})\n"
        "target_link_libraries(app PRIVATE tinyml_default)\n")
    subprocess.run(["cmake", "-S", str(tmp_path), "-B", str(tmp_path / "b")], check=True, capture_output=True)
    subprocess.run(["cmake", "--build", str(tmp_path / "b")], check=True, capture_output=True)
    out = subprocess.run([str(tmp_path / "b" / "app")], capture_output=True, text=True, timeout=60)
    assert out.stdout == want


def test_exported_library_runs_on_cortex_m4(firmware_repo, tmp_path):
    from codegen.runners import qemu

    if not qemu.toolchain_available():
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed")
    repo, want = firmware_repo
    lib = repo / "build" / "model_lib"
    elf = qemu.build_firmware([str(p) for p in sorted((lib / "src").glob("*.c"))] + [str(repo / "build" / "images.c")],
                              [str(lib / "include"), str(repo / "build")], str(repo / "main.c"), str(tmp_path / "fw.elf"))
    result = qemu.run_firmware(elf, timeout_s=120)
    assert result["exit_code"] == 0 and result["stdout"].replace("\r\n", "\n") == want


def _checkout_copy(dst):
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", "build", ".git", "__pycache__", "data",
                                                             ".pytest_cache", "*.egg-info"))


def test_shared_cache_second_checkout_trains_nothing(tmp_path):
    cache = tmp_path / "cache"
    runs = []
    for name in ("a", "b"):
        _checkout_copy(tmp_path / name)
        cmd = [scons_exe(), "-C", str(tmp_path / name), *[f"{k}={v}" for k, v in TINY.items()], f"CACHE_DIR={cache}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        runs.append(proc.stdout)
    first, second = runs
    assert "Training MobileNetV1" in built_stages(first)
    stages = built_stages(second)
    for expensive in ("Training MobileNetV1", "Quantizing (TFLite PTQ)", "TVM codegen (standalone C, MLF)"):
        assert expensive not in stages, second
    assert "Retrieved `build/nano33ble/model.tflite' from cache" in second
    assert "Retrieved `build/nano33ble/model_mlf.tar' from cache" in second
    a, b = (tmp_path / n / "build" / "nano33ble" for n in ("a", "b"))
    assert (a / "model_mlf.tar").read_bytes() == (b / "model_mlf.tar").read_bytes()
