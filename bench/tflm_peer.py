"""The peer to beat: TensorFlow Lite Micro (CMSIS-NN or reference kernels) on the same emulated Cortex-M4F.

Runs ../shared/peers/tflm_m4.sh (its README says what it needs: bare git mirrors in MIRROR=, the Arm toolchain
with libstdc++, qemu-system-arm) on one .tflite and parses the one line it prints per kernel set:

    <kernel set> insn=<instructions per inference> arena=<smallest working arena, B> flash=<firmware text+data, B>

The script is third-party glue kept outside the repository, so it is run, never imported or copied. A stand-in
with the same command line and output (PEER_SCRIPT_ENV or --peer-script) lets the table logic be tested without
building TFLite Micro.

Estimated cycles: the script counts instructions with its own plugin (m4/insncount.c, instructions only). The
firmware it built stays in its cache ($PEERS_CACHE/fw/<model>-<sha256:12>/<kernel set><OPT>/fw_<runs>_<arena>.elf),
so peer_cycles() runs this project's plugin on the same two ELFs (1 and 2 Invokes at the smallest arena) and takes
the same difference, for estimated cycles by the very model this project's count uses; it also checks that our
plugin's instruction difference equals the script's.
"""
import hashlib
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_SCRIPT = os.path.join(ROOT, "..", "shared", "peers", "tflm_m4.sh")
PEER_SCRIPT_ENV = "TINYML_PEER_SCRIPT"
CMSIS_NN = "cmsis-nn"
REFERENCE = "reference"

_RESULT_LINE = re.compile(r"^(?P<kset>\S+) insn=(?P<insn>\d+) arena=(?P<arena>\d+) flash=(?P<flash>\d+)\s*$")

# What ../shared/peers/README.md recorded on 2026-12-01 (TFLM 90b983c2, CMSIS-NN 4ab83cc3, gcc 12.2 -O2), shown
# only when the peer cannot run here and only for a model of the same name and MAC count; always labelled
# "recorded", never mixed with values measured in this run.
RECORDED_SOURCE = "../shared/peers/README.md: TFLM 90b983c2, CMSIS-NN 4ab83cc3, -O2, 2026-12-01"
RECORDED = {
    "tutorial": {"macs": 3329024, CMSIS_NN: {"insn": 11221196, "arena": 59836, "flash": 421288},
                 REFERENCE: {"insn": 44527928}},
    "vww_96_int8": {"macs": 7489664, CMSIS_NN: {"insn": 24116606, "arena": 100712, "flash": 431416},
                    REFERENCE: {"insn": 100453372}},
    "pretrainedResnet_quant": {"macs": 12501632, CMSIS_NN: {"insn": 29863721, "arena": 55000, "flash": 191420},
                               REFERENCE: {"insn": 107491761}},
    "kws_ref_model": {"macs": 2656768, CMSIS_NN: {"insn": 7697674, "arena": 22824, "flash": 152064},
                      REFERENCE: {"insn": 43113175}},
    "ad01_int8": {"macs": 264192, CMSIS_NN: {"insn": 583280, "arena": 3012, "flash": 322612},
                  REFERENCE: {"insn": 1954145}},
}


# the compiler's words when the model names an op TFLM's MicroMutableOpResolver has no Add... method for
_NO_KERNEL = re.compile(r"has no member named '(Add[A-Za-z0-9]+)'")


def _op_name(method):
    """AddTile -> TILE, AddResizeBilinear -> RESIZE_BILINEAR (the op's TFLite name)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", method[len("Add"):]).upper()


class PeerUnavailable(Exception):
    """The peer could not be measured; the message says why (and what to do)."""


def default_script():
    return os.environ.get(PEER_SCRIPT_ENV) or os.path.normpath(DEFAULT_SCRIPT)


def parse_output(text):
    """{kernel set: {"insn", "arena", "flash"}} from the script's stdout; other lines (warnings) are ignored."""
    results = {}
    for line in text.splitlines():
        m = _RESULT_LINE.match(line.strip())
        if m:
            results[m.group("kset")] = {k: int(m.group(k)) for k in ("insn", "arena", "flash")}
    return results


def _last_line(*texts):
    for text in texts:
        lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
        if lines:
            return lines[-1]
    return "no output"


def run(model, *, script=None, mirror=None, ksets=(CMSIS_NN,), opt="-O2", timeout_s=3600):
    """Measures `model` with the peer script; returns {kernel set: {"insn", "arena", "flash"}} for every kset.

    Raises PeerUnavailable when the script is absent, fails, times out or prints no result for a kernel set.
    The first run for an OPT builds the TFLM libraries (10-15 min per kernel set, cached by the script).
    """
    script = script or default_script()
    if not os.path.isfile(script):
        raise PeerUnavailable(f"peer script {script} not found (../shared/peers comes with the project's CI, "
                              f"not with a user's clone); give --peer-script or {PEER_SCRIPT_ENV}=")
    env = dict(os.environ, KSETS=" ".join(ksets), OPT=opt)
    if mirror:
        env["MIRROR"] = os.path.abspath(mirror)
    # the script's default TFLM_PY is ./.venv/bin/python relative to its working directory: pin it to ours
    env.setdefault("TFLM_PY", sys.executable)
    try:
        proc = subprocess.run(["bash", script, os.path.abspath(model)], env=env, capture_output=True, text=True,
                              timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise PeerUnavailable(f"{script} did not finish within {timeout_s} s (the first run builds the TFLM "
                              f"libraries: run it once with --lib-only, or raise --peer-timeout)") from None
    results = parse_output(proc.stdout)
    missing = [k for k in ksets if k not in results]
    absent = sorted(set(_NO_KERNEL.findall(proc.stderr or "")))
    if proc.returncode != 0 and absent:
        raise PeerUnavailable("TFLite Micro has no kernel for %s (its op resolver has no %s), so the peer cannot "
                              "run this model" % (", ".join(_op_name(a) for a in absent), ", ".join(absent)))
    if proc.returncode != 0:
        raise PeerUnavailable(f"{os.path.basename(script)} exited with code {proc.returncode}: "
                              f"{_last_line(proc.stderr, proc.stdout)}")
    if missing:
        raise PeerUnavailable(f"{os.path.basename(script)} printed no result for {', '.join(missing)}: "
                              f"{_last_line(proc.stdout, proc.stderr)}")
    return {k: results[k] for k in ksets}


def cache_dir():
    """Where the peer script keeps its libraries and firmware (its PEERS_CACHE default)."""
    return os.environ.get("PEERS_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tflm-peers")


def firmware_paths(model, kset, arena, opt="-O2"):
    """The script's ELFs for 1 and 2 Invokes of `model` with kernel set `kset` at `arena` bytes."""
    with open(model, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()[:12]
    key = "%s-%s" % (os.path.splitext(os.path.basename(model))[0], digest)
    w = os.path.join(cache_dir(), "fw", key, kset + opt)
    return os.path.join(w, "fw_1_%d.elf" % arena), os.path.join(w, "fw_2_%d.elf" % arena)


def outputs(model, kset, opt="-O2"):
    """The outputs the peer's firmware printed for `model` (its script keeps them as outputs.txt next to the
    ELFs): one list of value strings per output, integers in decimal, float32 as 0x%08x IEEE bits; None when
    the script left none (a stand-in script, or another PEERS_CACHE)."""
    path = os.path.join(os.path.dirname(firmware_paths(model, kset, 0, opt)[0]), "outputs.txt")
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return None
    outs = [line.split(":", 1)[1].split() for line in text.splitlines() if re.match(r"^out\d+ type=", line)]
    return outs or None


def peer_cycles(model, kset, result, *, opt="-O2", flash_wait_states=0, timeout_s=900):
    """Estimated cycles per inference of the peer's firmware (see the module doc): {"cycles", "insn_our_plugin"}.
    Raises PeerUnavailable when the script's ELFs are not in its cache or do not run."""
    from codegen.runners import qemu

    e1, e2 = firmware_paths(model, kset, result["arena"], opt)
    if not (os.path.isfile(e1) and os.path.isfile(e2)):
        raise PeerUnavailable(f"the peer's firmware is not in its cache ({os.path.dirname(e1)}), so this "
                              "project's plugin cannot estimate its cycles (a stand-in script, or another PEERS_CACHE)")
    runs = []
    for elf in (e1, e2):
        try:
            res = qemu.run_firmware(elf, timeout_s=timeout_s, count_instructions=True,
                                    flash_wait_states=flash_wait_states)
        except qemu.QemuError as e:
            raise PeerUnavailable(f"the peer's firmware {elf} did not run with this project's plugin: {e}") from None
        runs.append(res)
    return {"cycles": runs[1]["cycles"] - runs[0]["cycles"],
            "insn_our_plugin": runs[1]["instructions"] - runs[0]["instructions"]}


def add_cycles(model, results, *, opt="-O2", flash_wait_states=0):
    """Adds "cycles" (None when it cannot be estimated, with "cycles_error") to every kernel set's result."""
    for kset, result in results.items():
        try:
            result.update(peer_cycles(model, kset, result, opt=opt, flash_wait_states=flash_wait_states))
            result["cycles_error"] = None
        except PeerUnavailable as e:
            result.update(cycles=None, cycles_error=str(e))
    return results


def recorded(name, macs):
    """The README's recorded peer values for a model of this name and MAC count, or None."""
    entry = RECORDED.get(name)
    if entry is None or entry["macs"] != macs:
        return None
    return {k: v for k, v in entry.items() if k != "macs"}
