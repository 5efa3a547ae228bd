"""One trial = ordinary `scons` builds of the project's own SConstruct, each in its own folder:

1. the probe (cheap): `python -m codegen.tune.untrained` makes the candidate's network untrained, and
   `scons memory [simulate] MODEL=untrained.keras REP_DATA=rep.npy` quantizes it on random data, generates,
   plans and counts it: the board's flash and RAM (memory.json, the same budget `compile` enforces) and the
   latency (simulate.json: QEMU's estimated Cortex-M4 cycles at the board's clock, or simavr's measured ms).
   Probes live in `<tune dir>/probes/<architecture hash>/`: a candidate that differs only in EPOCHS= or LR=
   reuses its architecture's probe.
2. the build (expensive, feasible candidates only): `scons report memory [simulate]` with the candidate's
   variables in `<tune dir>/trial-N/`, sharing CACHE_DIR, so a repeated configuration comes from the cache and a
   finished build survives any kill (the stages' own finished-target records).

Every variable is passed on the command line (with an empty profile file), so a trial is exactly the build
`scons tune save` writes into a profile.
"""
import hashlib
import json
import os
import sys

from .. import config, proc
from .. import boards
from ..errors import PipelineError

NO_PROFILES = "no-profiles.ini"     # a file that does not exist: trials take every value from their command line


class TrialError(PipelineError):
    """A trial's build failed: the message is its error line and where its log is."""


def latency_ms(simulate, board):
    """ms per inference from simulate.json: simavr measures it; on QEMU, the Cortex-M4 cycles the instruction-count
    plugin estimates at the board's clock (an older simulate.json without them: 1 instruction per cycle)."""
    if simulate.get("ms_per_inference") is not None:
        return float(simulate["ms_per_inference"])
    if simulate.get("ms_per_inference_estimate") is not None:
        return float(simulate["ms_per_inference_estimate"])
    if simulate.get("instructions_per_inference") is not None and board.get("clock_hz"):
        return float(simulate["instructions_per_inference"]) / float(board["clock_hz"]) * 1000.0
    return None


def _shown(path):
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def _read(path):
    with open(path) as f:
        return json.load(f)


def _error_line(log_path):
    """The last `error:` line of a build log (what the build said), else its last line."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.rstrip() for line in f if line.strip()]
    except OSError:
        return "no log"
    errors = [line for line in lines if line.startswith("error:") or "error:" in line[:40]]
    return (errors or lines or ["(empty log)"])[-1]


class Runner:
    def __init__(self, *, root, space, board, tune_dir, cache_dir):
        self.root = root
        self.space = space
        self.board = board
        self.tune_dir = tune_dir
        self.cache_dir = cache_dir
        self.emulated = boards.board(board).has_emulator
        self.scons = os.path.join(os.path.dirname(sys.executable), "scons")

    # --- the command lines -------------------------------------------------------------------------------------

    def variables(self, candidate):
        """Every build variable of the candidate's training build (what `scons tune save` writes)."""
        values = {k: v for k, v in self.space.base.items() if k not in ("BUILD_DIR",)}
        values.update(candidate)
        if values.get("ARCH", "mobilenet_v1") != "mobilenet_v1":
            values.pop("DEPTH", None)
        values["BOARD"] = self.board["name"]
        values["CACHE_DIR"] = self.cache_dir
        return values

    def _scons(self, build_dir, values, targets):
        return [self.scons, "-C", self.root, f"--project-conf={os.path.join(self.tune_dir, NO_PROFILES)}",
                *[f"{k}={v}" for k, v in values.items()], f"BUILD_DIR={build_dir}", *targets]

    def _run(self, cmd, log_path):
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "w") as log:
            log.write(proc.command_line(cmd) + "\n")
            log.flush()
            result = proc.run(cmd, stdout=log, stderr=proc.STDOUT, stdin=proc.DEVNULL)
        if result.returncode != 0:
            raise TrialError(f"{_error_line(log_path)} (log: {_shown(log_path)})")

    # --- the probe ------------------------------------------------------------------------------------------------

    def architecture(self, candidate):
        """What the probe's numbers depend on: the typed settings of the candidate's network."""
        cfg = config.parse({k: v for k, v in self.variables(candidate).items()}, self.board)
        return {"arch": cfg["arch"], "alpha": cfg["alpha"], "size": cfg["size"], "channels": cfg["channels"],
                "depth": cfg["depth"], "classes": self._classes(cfg), "io_type": cfg["io_type"],
                "seed": cfg["seed"], "board": self.board["name"]}

    @staticmethod
    def _classes(cfg):
        if not cfg["data"]:
            return 2            # the built-in car / not-car set
        return max(2, len([d for d in os.listdir(cfg["data"]) if not d.startswith((".", "_"))
                           and os.path.isdir(os.path.join(cfg["data"], d))]))

    def probe(self, candidate):
        """{ram, ram_limit, flash, flash_limit, latency_ms, why_not} of the candidate's untrained network."""
        arch = self.architecture(candidate)
        key = hashlib.sha1(json.dumps(arch, sort_keys=True).encode()).hexdigest()[:12]
        folder = os.path.join(self.tune_dir, "probes", key)
        result_path = os.path.join(folder, "probe.json")
        if os.path.exists(result_path):
            return dict(_read(result_path), cached=True)
        model_dir = os.path.join(folder, "model")
        cmd = [sys.executable, "-m", "codegen.tune.untrained", model_dir, "--arch", arch["arch"],
               "--alpha", str(arch["alpha"]), "--size", str(arch["size"]), "--channels", str(arch["channels"]),
               "--classes", str(arch["classes"]), "--seed", str(arch["seed"])]
        if arch["depth"] is not None:
            cmd += ["--depth", str(arch["depth"])]
        self._run_python(cmd, os.path.join(folder, "untrained.log"))
        values = {"BOARD": self.board["name"], "MODEL": os.path.join(model_dir, "untrained.keras"),
                  "REP_DATA": os.path.join(model_dir, "rep.npy"), "SEED": str(arch["seed"]),
                  "IO_TYPE": arch["io_type"], "REP_SAMPLES": "8"}
        build = os.path.join(folder, "build")
        out = os.path.join(build, self.board["name"])
        result = {"architecture": arch}
        try:
            self._run(self._scons(build, values, ["memory"]), os.path.join(folder, "memory.log"))
        except TrialError as e:
            if "32,767" not in str(e) and "32767" not in str(e):
                raise
            # an AVR array over avr-gcc's 16-bit object limit: it cannot be built for this board at all
            result.update(why_not="a constant array over 32,767 B (avr-gcc's limit)", fits=False)
        if "why_not" not in result:
            memory = _read(os.path.join(out, "memory.json"))
            result.update(ram=memory["ram"]["total"], ram_limit=memory["ram"]["limit"],
                          flash=memory["flash"]["total"], flash_limit=memory["flash"]["limit"],
                          fits=bool(memory["ram"]["fits"] and memory["flash"]["fits"]))
            reasons = [f"{what} over by {memory[what]['over_by']:,} B" for what in ("ram", "flash")
                       if not memory[what]["fits"]]
            if reasons:
                result["why_not"] = ", ".join(r.replace("ram", "RAM") for r in reasons)
        if result["fits"] and self.emulated:
            self._run(self._scons(build, values, ["simulate"]), os.path.join(folder, "simulate.log"))
            result["latency_ms"] = latency_ms(_read(os.path.join(out, "simulate.json")), self.board)
        from ..fsutil import atomic_open

        with atomic_open(result_path) as f:
            json.dump(result, f, indent=1)
        return dict(result, cached=False)

    def _run_python(self, cmd, log_path):
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
        with open(log_path, "w") as log:
            result = proc.run(cmd, stdout=log, stderr=proc.STDOUT, stdin=proc.DEVNULL, cwd=self.root)
        if result.returncode != 0:
            raise TrialError(f"building the untrained model failed: {_error_line(log_path)} "
                             f"(log: {_shown(log_path)})")

    # --- the training build ----------------------------------------------------------------------------------------

    def trial_dir(self, number):
        return os.path.join(self.tune_dir, f"trial-{number}")

    def build(self, number, candidate):
        """The candidate's ordinary build: {accuracy, float_accuracy, ram, flash, latency_ms, exact}."""
        folder = self.trial_dir(number)
        targets = ["report", "memory"] + (["simulate"] if self.emulated else [])
        self._run(self._scons(folder, self.variables(candidate), targets), os.path.join(folder, "build.log"))
        out = os.path.join(folder, self.board["name"])
        metrics = _read(os.path.join(out, "metrics.json"))
        memory = _read(os.path.join(out, "memory.json"))
        result = {"accuracy": metrics["quantized_val_accuracy"], "float_accuracy": metrics["float_val_accuracy"],
                  "ram": memory["ram"]["total"], "ram_limit": memory["ram"]["limit"],
                  "flash": memory["flash"]["total"], "flash_limit": memory["flash"]["limit"]}
        if self.emulated:
            simulate = _read(os.path.join(out, "simulate.json"))
            result["latency_ms"] = latency_ms(simulate, self.board)
        return result
