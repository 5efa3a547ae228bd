"""The user's TinyMaix checkout (TINYMAIX_DIR=): checked once, identified by its content, and compiled for a
toolchain (host gcc or the Cortex-M4F) with the architecture chosen per build.

TinyMaix is configured in its own include/tm_port.h, which tinymaix.h includes from its own folder, so an include
path cannot replace it. Every build here force-includes tinymaix_port.h (templates/tinymaix/src/, also in the
sketch): it includes the checkout's tm_port.h first (its include guard then skips it inside tinymaix.h) and sets
only what the build must decide: TM_ARCH (TM_ARCH_CPU on the host, TM_ARCH_ARM_SIMD on the M4) and the int8 model
type. The user's other settings (TM_OPT_LEVEL, TM_MAX_CSIZE, ...) stay theirs. Nothing of TinyMaix is copied.
"""
import hashlib
import os

from ... import proc as external
from ...errors import ConfigError, PipelineError

MARKERS = ("include/tinymaix.h", "include/tm_port.h", "src/tm_model.c", "tools/tflite2tmdl.py",
           "tools/tflite_reader.py")
# The runtime's C sources (tm_layers_fp8.c is the experimental fp8 model type: not an int8 build's).
RUNTIME_SOURCES = ("src/tm_model.c", "src/tm_layers.c", "src/tm_layers_O1.c", "src/tm_stat.c")
PORT_HEADER = "tinymaix_port.h"
HASHED_EXTS = (".c", ".h", ".py")
ARCHS = {"host": "TM_ARCH_CPU", "cortex-m4": "TM_ARCH_ARM_SIMD"}

_DIGESTS = {}


class TinyMaixError(PipelineError):
    """Building or running against TINYMAIX_DIR failed."""


def check_tree(tinymaix_dir):
    """The checkout's absolute path; ConfigError (one line) when it is unset or not a TinyMaix tree."""
    if not (tinymaix_dir or "").strip():
        raise ConfigError("BACKEND=tinymaix needs TINYMAIX_DIR=<your TinyMaix checkout> (git clone "
                          "https://github.com/sipeed/TinyMaix): its runtime and its converter tools/tflite2tmdl.py")
    root = os.path.abspath(tinymaix_dir)
    missing = [m for m in MARKERS if not os.path.isfile(os.path.join(root, m))]
    if missing:
        raise ConfigError(f"TINYMAIX_DIR={tinymaix_dir!r} is not a TinyMaix checkout ({', '.join(missing)} "
                          "missing); point it at the folder that holds include/, src/ and tools/")
    return root


def tree_files(root):
    """The checkout's runtime and converter files (relative, sorted): what the build's results depend on."""
    found = []
    for top in ("include", "src", "tools"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, top)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
            found += [os.path.relpath(os.path.join(dirpath, f), root) for f in sorted(filenames)
                      if f.endswith(HASHED_EXTS)]
    return found


def tree_digest(root):
    """sha256 over every runtime and converter file's path and content: editing one reruns what used it
    (computed once per process)."""
    root = os.path.abspath(root)
    if root not in _DIGESTS:
        h = hashlib.sha256()
        for rel in tree_files(root):
            h.update(rel.encode() + b"\0")
            with open(os.path.join(root, rel), "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        _DIGESTS[root] = h.hexdigest()
    return _DIGESTS[root]


def port_header():
    """The force-included configuration header (see the module docstring)."""
    from .sketch import templates_dir

    return os.path.join(templates_dir(), "src", PORT_HEADER)


def compile_flags(root, toolchain, arch=None):
    """Flags every unit that includes tinymaix.h needs: the checkout's include/, the port header, the
    architecture (`arch` overrides the toolchain's: "TM_ARCH_CPU" measures the plain C kernels on the M4)."""
    return ["-I", os.path.join(root, "include"), "-include", port_header(), f"-DTINYML_TM_ARCH={arch or ARCHS[toolchain]}"]


def runtime_sources(root):
    return [os.path.join(root, rel) for rel in RUNTIME_SOURCES if os.path.isfile(os.path.join(root, rel))]


def run(cmd, what, cwd=None):
    try:
        proc = external.run(cmd, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise TinyMaixError(f"{cmd[0]} not found: {what} needs it (Debian/Ubuntu: apt-get install gcc, or "
                            "gcc-arm-none-eabi libnewlib-arm-none-eabi for the Cortex-M4)") from None
    if proc.returncode != 0:
        raise TinyMaixError(f"{what} failed:\n{(proc.stderr or proc.stdout).strip()[-3000:]}")
    return proc


def build_host_library(root, out_dir):
    """libtinymaix.a of the checkout's runtime for the host (TM_ARCH_CPU), in out_dir; returns its path."""
    objs = []
    for src in runtime_sources(root):
        obj = os.path.join(out_dir, os.path.basename(src) + ".o")
        run(["gcc", "-std=gnu99", "-O2", *compile_flags(root, "host"), "-c", src, "-o", obj],
            f"compiling TinyMaix's {os.path.relpath(src, root)} for the host")
        objs.append(obj)
    lib = os.path.join(out_dir, "libtinymaix.a")
    run(["ar", "rcs", lib, *objs], "archiving the TinyMaix runtime")
    return lib
