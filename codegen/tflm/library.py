"""Builds a TFLite Micro source tree (TFLM_DIR=, as made by TFLM's create_tflm_tree.py or an Arduino library
checkout) into a static library, once per tree content and toolchain, and caches it.

Why not SCons nodes: the ~200-300 TFLM sources take ~10 minutes on two busy cores, and every build dir (each
user's, each test's) would recompile them. The library is a pure function of (tree content, compiler, flags), so
it lives in a content-addressed cache (TFLM_CACHE=, default ~/.cache/tinyml-scons/tflm) shared by all of them;
a lock file makes concurrent builds of the same key wait for the first instead of compiling twice.

Objects are cached one by one (per tree content, toolchain and flags), and a library holds the framework, the
kernel helpers and the kernels of the ops asked for (`ops=`, their Register_* functions found in the tree):
the first model pays for its own kernels only (on two busy cores the whole tree took over 30 minutes), the next
one compiles just the kernels it adds. Without `ops` every kernel is built.
"""
import concurrent.futures
import contextlib
import hashlib
import json
import os
import re
import shutil

from .. import proc as external
from .. import boards
from ..errors import PipelineError

# TFLM's own flags (tensorflow/lite/micro/tools/make/Makefile, BUILD_TYPE=release): without them some files
# do not compile (static memory), and the strip/NDEBUG pair matches what TFLM ships for MCUs.
COMMON_DEFINES = ("-DTF_LITE_STATIC_MEMORY", "-DTF_LITE_DISABLE_X86_NEON", "-DNDEBUG",
                  "-DTF_LITE_STRIP_ERROR_STRINGS")
CXX_ONLY = ("-std=c++17", "-fno-rtti", "-fno-exceptions", "-fno-threadsafe-statics")
THIRD_PARTY_INCLUDES = ("third_party/flatbuffers/include", "third_party/gemmlowp", "third_party/ruy",
                        "third_party/kissfft")
CMSIS_NN_INCLUDES = ("third_party/cmsis_nn", "third_party/cmsis_nn/Include", "third_party/cmsis/CMSIS/Core/Include")

# name: compilers, target flags, optimisation. The M4 flags are the QEMU runner's CPU's (boards.json "cpus").
TOOLCHAINS = {
    "host": {"cc": "gcc", "cxx": "g++", "ar": "ar", "arch": (), "opt": "-O1",
             "hint": "install the Debian packages gcc and g++"},
    "cortex-m4": {"cc": "arm-none-eabi-gcc", "cxx": "arm-none-eabi-g++", "ar": "arm-none-eabi-ar",
                  "arch": tuple(boards.cpu("cortex-m4f").gcc_flags), "opt": "-O2",
                  "hint": "install the Debian packages gcc-arm-none-eabi, libnewlib-arm-none-eabi and "
                          "libstdc++-arm-none-eabi-newlib"},
}
SOURCE_EXTS = (".c", ".cc", ".cpp")
HASHED_EXTS = SOURCE_EXTS + (".h", ".hpp", ".inc")
MARKER = "tensorflow/lite/micro/micro_interpreter.h"


class TflmError(PipelineError):
    """TFLM_DIR is unusable, or building / running against it failed."""


def default_cache_dir():
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "tinyml-scons", "tflm")


def check_tree(tflm_dir):
    """Raises TflmError unless tflm_dir looks like a TFLM source tree; returns its absolute path."""
    if not tflm_dir:
        raise TflmError("BACKEND=tflm needs TFLM_DIR=<TensorFlow Lite Micro source tree>: a tree made by TFLM's "
                        "create_tflm_tree.py, or the folder of the Arduino library 'tflite-micro-arduino-examples'")
    root = os.path.abspath(tflm_dir)
    if not os.path.isfile(os.path.join(root, MARKER)):
        # An Arduino library keeps the sources under src/ (library.properties, src/tensorflow/...).
        if os.path.isfile(os.path.join(root, "src", MARKER)):
            return os.path.join(root, "src")
        raise TflmError(f"TFLM_DIR={tflm_dir!r} is not a TensorFlow Lite Micro source tree ({MARKER} is missing); "
                        "point it at the folder that holds tensorflow/ and third_party/")
    return root


def has_cmsis_nn(root):
    return os.path.isdir(os.path.join(root, "tensorflow/lite/micro/kernels/cmsis_nn"))


def _wanted_source(rel):
    name = os.path.basename(rel)
    if name.endswith(("_test.cc", "_test.c")) or name.startswith("test_helper"):
        return False
    # The signal library and kissfft serve the audio front end's custom ops, which a builtin-op resolver never
    # registers; leaving them out saves a fifth of the build.
    return rel.startswith("tensorflow/") or rel.startswith("third_party/cmsis_nn/")


KERNEL_DIR = "tensorflow/lite/micro/kernels/"
_REGISTRATION_DEF = re.compile(r"^\s*(?:const\s+)?TFLMRegistration\*?\s+(Register_\w+)\s*\(\s*\)\s*\{", re.M)
_RESOLVER_METHOD = re.compile(r"TfLiteStatus\s+Add([A-Z][A-Za-z0-9]*)\s*\(")


def _read(root, rel):
    with open(os.path.join(root, rel), errors="replace") as f:
        return f.read()


def registrations_by_method(root):
    """{resolver method suffix (e.g. 'Conv2D'): {'Register_CONV_2D', ...}} read from the tree's
    micro_mutable_op_resolver.h: what each AddXxx() pulls in."""
    text = _read(root, "tensorflow/lite/micro/micro_mutable_op_resolver.h")
    starts = [(m.start(), m.group(1)) for m in _RESOLVER_METHOD.finditer(text)] + [(len(text), None)]
    found = {}
    for (a, name), (b, _) in zip(starts, starts[1:]):
        found[name] = set(re.findall(r"\b(Register_\w+)\s*\(", text[a:b]))
    return found


def kernel_sources(root, sources, methods):
    """The kernel files a library with resolver `methods` (e.g. ['Conv2D', 'Softmax']) needs: every file that
    defines a Register_* function those methods call; of the files that define none (helpers), those named after
    a kernel (conv_common.cc for conv.cc) go with it, the others (kernel_util.cc, ...) always."""
    table = registrations_by_method(root)
    wanted = set()
    for method in methods:
        wanted |= table.get(method, set())
    kernels, helpers, names = [], [], set()
    for rel in sources:
        if not rel.startswith(KERNEL_DIR):
            continue
        defined = set(_REGISTRATION_DEF.findall(_read(root, rel)))
        if defined:
            names.add(os.path.splitext(os.path.basename(rel))[0])
            if defined & wanted:
                kernels.append(rel)
        else:
            helpers.append(rel)
    chosen = {os.path.splitext(os.path.basename(rel))[0] for rel in kernels}
    for rel in helpers:
        owner = os.path.splitext(os.path.basename(rel))[0]
        owner = owner[:-len("_common")] if owner.endswith("_common") else owner
        if owner not in names or owner in chosen:
            kernels.append(rel)
    return sorted(kernels)


CMSIS_NN_DIR = "third_party/cmsis_nn/"
_ARM_CALL = re.compile(r"\b(arm_\w+)\s*\(")
_ARM_DEF = re.compile(r"^[A-Za-z_][\w \t\*]*?\b(arm_\w+)\s*\(([^;{}]*)\)\s*\{", re.M)


def cmsis_nn_sources(root, sources, kernel_files):
    """The CMSIS-NN C files the chosen kernels reach: the closure of the arm_* functions they call over the
    functions each CMSIS-NN file defines (CMSIS-NN has one public function per file and ~110 files)."""
    defined_in = {}
    for rel in sources:
        if rel.startswith(CMSIS_NN_DIR):
            for name, _ in _ARM_DEF.findall(_read(root, rel)):
                defined_in.setdefault(name, rel)
    todo = [name for rel in kernel_files for name in _ARM_CALL.findall(_read(root, rel))]
    seen, files = set(), set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        rel = defined_in.get(name)
        if rel and rel not in files:
            files.add(rel)
            todo += _ARM_CALL.findall(_read(root, rel))
    return sorted(files)


def tree_files(root):
    """(relative path) of every hashed file in the tree, sorted."""
    found = []
    for d, dirs, files in os.walk(root):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        for f in files:
            if f.endswith(HASHED_EXTS):
                found.append(os.path.relpath(os.path.join(d, f), root))
    return sorted(found)


_DIGESTS = {}


def tree_digest(root):
    """sha256 over every source and header's path and content: the tree's identity for the cache (computed once
    per process: SCons asks for it for every TFLM node)."""
    root = os.path.abspath(root)
    if root not in _DIGESTS:
        _DIGESTS[root] = _tree_digest(root)
    return _DIGESTS[root]


def _tree_digest(root):
    h = hashlib.sha256()
    for rel in tree_files(root):
        h.update(rel.encode() + b"\0")
        with open(os.path.join(root, rel), "rb") as f:
            h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def include_dirs(root):
    dirs = [root] + [os.path.join(root, d) for d in THIRD_PARTY_INCLUDES if os.path.isdir(os.path.join(root, d))]
    if has_cmsis_nn(root):
        dirs += [os.path.join(root, d) for d in CMSIS_NN_INCLUDES if os.path.isdir(os.path.join(root, d))]
    return dirs


def compile_flags(root, toolchain):
    """Flags (target, optimisation, defines, includes) that code linked against the library must use too:
    CMSIS_NN changes the kernel headers' declarations."""
    tc = TOOLCHAINS[toolchain]
    defines = list(COMMON_DEFINES) + (["-DCMSIS_NN"] if has_cmsis_nn(root) else [])
    return [*tc["arch"], tc["opt"], "-ffunction-sections", "-fdata-sections", *defines] + \
        [f"-I{d}" for d in include_dirs(root)]


def _compiler_identity(exe):
    proc = external.run([exe, "--version"], capture_output=True, text=True)
    return proc.stdout.splitlines()[0] if proc.returncode == 0 and proc.stdout else exe


def library_key(root, toolchain):
    tc = TOOLCHAINS[toolchain]
    desc = {"tree": tree_digest(root), "toolchain": toolchain, "cxx": _compiler_identity(tc["cxx"]),
            "flags": [f for f in compile_flags(root, toolchain) if not f.startswith("-I")],
            "cxx_only": list(CXX_ONLY), "version": 1}
    return hashlib.sha256(json.dumps(desc, sort_keys=True).encode()).hexdigest()[:20], desc


def _compile_one(args):
    cmd, src = args
    proc = external.run(cmd, capture_output=True, text=True)
    return src, proc.returncode, proc.stderr


@contextlib.contextmanager
def _locked(path):
    from filelock import FileLock      # flock(2) on POSIX, LockFileEx on Windows

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with FileLock(path, thread_local=False):
        yield


def build_library(tflm_dir, toolchain, *, ops=None, cache_dir=None, jobs=None, log=print):
    """Path of a static TFLM library for tflm_dir and toolchain ('host' or 'cortex-m4'), building what is missing.

    `ops`: MicroMutableOpResolver method suffixes (e.g. ['Conv2D', 'Softmax']) whose kernels it must hold; None:
    all kernels."""
    if toolchain not in TOOLCHAINS:
        raise TflmError(f"unknown TFLM toolchain {toolchain!r}; use one of {', '.join(TOOLCHAINS)}")
    tc = TOOLCHAINS[toolchain]
    for exe in (tc["cc"], tc["cxx"], tc["ar"]):
        if shutil.which(exe) is None:
            raise TflmError(f"{exe} not found on PATH (needed to build TFLite Micro for {toolchain}): {tc['hint']}")
    root = check_tree(tflm_dir)
    key, desc = library_key(root, toolchain)
    cache_dir = os.path.abspath(cache_dir or default_cache_dir())
    out_dir = os.path.join(cache_dir, f"{toolchain}-{key}")
    all_sources = [rel for rel in tree_files(root) if rel.endswith(SOURCE_EXTS) and _wanted_source(rel)]
    if ops is None:
        sources, label = all_sources, "all"
    else:
        kernels = set(kernel_sources(root, all_sources, ops))
        picked = kernels | set(cmsis_nn_sources(root, all_sources, sorted(kernels)))
        sources = [rel for rel in all_sources
                   if rel in picked or not rel.startswith((KERNEL_DIR, CMSIS_NN_DIR))]
        label = hashlib.sha256(",".join(sorted(set(ops))).encode()).hexdigest()[:12]
    lib = os.path.join(out_dir, f"libtflm-{label}.a")
    if os.path.isfile(lib):
        return lib
    with _locked(out_dir + ".lock"):
        if os.path.isfile(lib):          # built by whoever held the lock before us
            return lib
        obj_dir = os.path.join(out_dir, "obj")
        objects = [os.path.join(obj_dir, rel + ".o") for rel in sources]
        todo = [(rel, obj) for rel, obj in zip(sources, objects) if not os.path.isfile(obj)]
        if todo:
            log(f"Building TensorFlow Lite Micro for {toolchain}: {len(todo)} of {len(sources)} files of {root} "
                f"into {out_dir} (once per tree: later builds reuse them; the whole tree takes ~10-30 min on 2 "
                "cores)")
        flags = compile_flags(root, toolchain)
        nice = ["nice", "-n", "5"] if shutil.which("nice") else []
        jobs_list = []
        for rel, obj in todo:
            os.makedirs(os.path.dirname(obj), exist_ok=True)
            is_cxx = not rel.endswith(".c")
            tmp = f"{obj}.{os.getpid()}.tmp"
            jobs_list.append(([*nice, tc["cxx"] if is_cxx else tc["cc"], *flags, *(CXX_ONLY if is_cxx else ()),
                               "-c", os.path.join(root, rel), "-o", tmp], rel, tmp, obj))
        failures = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs or os.cpu_count() or 2) as pool:
            for (cmd, rel, tmp, obj), (_, rc, err) in zip(jobs_list, pool.map(_compile_one,
                                                                             [(j[0], j[1]) for j in jobs_list])):
                if rc != 0:
                    failures.append((rel, err))
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(tmp)
                else:
                    os.replace(tmp, obj)        # an object is either complete or absent
        if failures:
            rel, err = failures[0]
            raise TflmError(f"compiling TFLite Micro for {toolchain} failed in {len(failures)} file(s), first "
                            f"{rel}:\n{err.strip()[-2000:]}\nCheck that TFLM_DIR={tflm_dir} is a complete tree "
                            f"generated for this target (create_tflm_tree.py) and that {tc['cxx']} is GCC >= 9")
        tmp_lib = f"{lib}.{os.getpid()}.tmp"
        proc = external.run([tc["ar"], "rcs", tmp_lib, *objects], capture_output=True, text=True)
        if proc.returncode != 0:
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp_lib)
            raise TflmError(f"{tc['ar']} could not make {lib}: {proc.stderr.strip()}")
        with open(os.path.join(out_dir, "build.json"), "w") as f:
            json.dump({**desc, "root": root}, f, indent=1)
        os.replace(tmp_lib, lib)      # last: the library's presence means it is complete
    return lib


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Build (or find in the cache) TFLite Micro as a static library.")
    ap.add_argument("tflm_dir")
    ap.add_argument("toolchain", choices=sorted(TOOLCHAINS))
    ap.add_argument("--cache-dir")
    a = ap.parse_args()
    try:
        print(build_library(a.tflm_dir, a.toolchain, cache_dir=a.cache_dir))
    except TflmError as e:
        raise SystemExit(f"error: {e}")
