"""The search space of `scons tune`: which build variables vary and over what values.

Written as lists or integer ranges, in a profile file's `[tune]` section (every run) or `[tune:NAME]` (with
ENV=NAME, over [tune]), or on the command line (over both):

    [tune]
    ALPHA = 0.25, 0.5           ; a list: these values
    SIZE = 48, 64, 96
    DEPTH = 2..6                ; an integer range, both ends included (2..12:2 steps by 2)

A single value on the command line fixes that variable (SIZE=64). With no space given anywhere, the board's
default applies (`default_space`). Every value is checked as the build would check it (config.parse, with the
board's defaults), so a bad one stops the study before any trial with its file, line and what to change.
"""
import hashlib
import json
import re
from dataclasses import dataclass

from .. import config
from ..errors import ConfigError

# What a search may vary: the model and its training. Everything else (BOARD=, DATA=, ...) is fixed per study.
TUNABLE = ("ARCH", "ALPHA", "SIZE", "CHANNELS", "DEPTH", "EPOCHS", "LR", "BATCH", "REP_SAMPLES", "SAMPLES")
# Sampled first: the values offered for ALPHA (and whether DEPTH applies) depend on it.
_ORDER = {"ARCH": 0}
_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*(?::\s*(\d+)\s*)?$")
_INTEGER = ("SIZE", "DEPTH", "EPOCHS", "BATCH", "REP_SAMPLES", "SAMPLES")


@dataclass(frozen=True)
class Param:
    name: str
    choices: tuple = ()         # a list of values (strings, as on a command line)
    low: int = None             # or an integer range low..high:step
    high: int = None
    step: int = 1
    where: str = ""             # where it was written, for messages

    def describe(self):
        if self.choices:
            return ", ".join(self.choices)
        return f"{self.low}..{self.high}" + (f":{self.step}" if self.step != 1 else "")

    def values(self):
        return list(self.choices) if self.choices else [str(v) for v in range(self.low, self.high + 1, self.step)]


def default_space(board):
    """A board's default space: around its memory class (an 8-bit board with a few KB of RAM fits only
    MobileNetV1's first blocks on small grayscale images; a Cortex-M4 with 256 KB fits the tutorial's model)."""
    if int(board.get("ram_bytes", 0)) < 32 * 1024:
        return {"SIZE": "32, 48", "DEPTH": "1..3", "CHANNELS": "1"}
    return {"ALPHA": "0.25, 0.5", "SIZE": "48, 64, 96", "CHANNELS": "1, 3"}


def is_space_value(name, value):
    """Whether a command-line value of a tunable variable is a list or range (searched) rather than one value."""
    return name in TUNABLE and ("," in str(value) or _RANGE.match(str(value)) is not None)


def _parse_one(name, text, where):
    items = [p.strip() for p in str(text).replace("\n", ",").split(",") if p.strip()]
    if name not in config.VARIABLES:
        raise ConfigError(f"{where}: {name} is not a build variable; a search space varies some of: "
                          f"{', '.join(TUNABLE)}")
    if name not in TUNABLE:
        raise ConfigError(f"{where}: {name} cannot be searched (it is fixed for a study); vary some of "
                          f"{', '.join(TUNABLE)}, and set {name} on the command line or in the profile")
    if not items:
        raise ConfigError(f"{where}: {name} has no values; give a list ({name} = a, b) or a range ({name} = 1..4), "
                          "or remove the line")
    if len(items) == 1:
        match = _RANGE.match(items[0])
        if match:
            if name not in _INTEGER:
                raise ConfigError(f"{where}: {name}={items[0]} is a range, but {name} is not a whole number; give "
                                  f"a list, e.g. {name} = {config.VARIABLES[name][0] or 'a, b'}")
            low, high, step = int(match.group(1)), int(match.group(2)), int(match.group(3) or 1)
            if low > high or step < 1:
                raise ConfigError(f"{where}: {name}={items[0]} is an empty range; write low..high (both included) "
                                  "with low <= high, and an optional :step of at least 1")
            return Param(name, low=low, high=high, step=step, where=where)
    if len(set(items)) != len(items):
        raise ConfigError(f"{where}: {name} lists a value twice ({', '.join(items)}); list each value once")
    return Param(name, choices=tuple(items), where=where)


class Space:
    """The params searched (ARCH first) and the build variables fixed for every trial (`base`)."""

    def __init__(self, params, base, board_name, source):
        self.params = sorted(params, key=lambda p: _ORDER.get(p.name, 1))
        self.base = base            # {NAME: string}: the values in force, minus what the space varies
        self.board_name = board_name
        self.source = source        # where the space came from, for the report

    def by_name(self):
        return {p.name: p for p in self.params}

    def archs(self):
        p = self.by_name().get("ARCH")
        return p.values() if p else [self.base.get("ARCH") or config.VARIABLES["ARCH"][0]]

    def describe(self):
        return "; ".join(f"{p.name} {p.describe()}" for p in self.params)

    def key(self, extra=None):
        """A short hash naming the study: the same space, fixed values and budget resume the same study."""
        fixed = {k: v for k, v in self.base.items() if k not in ("BUILD_DIR", "CACHE_DIR", "VERBOSE")}
        blob = json.dumps({"space": [(p.name, p.describe()) for p in self.params], "base": fixed,
                           "board": self.board_name, "extra": extra}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]

    def _param_lists(self, arch, archs):
        """[(Optuna parameter name, values)] sampled for a trial of `arch` (as `suggest` names them)."""
        lists = []
        for p in self.params:
            if p.name == "ARCH":
                lists.append(("ARCH", list(archs)))
            elif p.name == "ALPHA":
                choices = [a for a in p.values() if float(a) in config.ARCH_ALPHAS[arch]]
                if choices:
                    lists.append((f"ALPHA ({arch})" if len(archs) > 1 else "ALPHA", choices))
            elif p.name == "DEPTH" and arch != "mobilenet_v1":
                continue
            else:
                lists.append((p.name, list(p.choices) if p.choices else list(range(p.low, p.high + 1, p.step))))
        return lists

    def candidates(self, limit):
        """Every candidate as Optuna parameters {name: value}, in order; None when there are more than `limit`.
        A space no larger than the study is tried exhaustively, each candidate once."""
        import itertools

        archs = self.archs()
        found = []
        for arch in archs:
            lists = [(n, [arch] if n == "ARCH" else v) for n, v in self._param_lists(arch, archs)]
            count = 1
            for _, values in lists:
                count *= len(values)
            if len(found) + count > limit:
                return None
            for combo in itertools.product(*[values for _, values in lists]):
                found.append(dict(zip([n for n, _ in lists], combo)))
        return found

    def suggest(self, trial):
        """Samples one candidate through the Optuna trial: {NAME: value string} of the searched variables."""
        by_name = self.by_name()
        variables = {}
        archs = self.archs()
        arch = trial.suggest_categorical("ARCH", archs) if "ARCH" in by_name else archs[0]
        if "ARCH" in by_name:
            variables["ARCH"] = arch
        for p in self.params:
            if p.name == "ARCH":
                continue
            name = p.name
            if p.name == "ALPHA":
                choices = [a for a in p.values() if float(a) in config.ARCH_ALPHAS[arch]]
                if not choices:
                    continue            # none of the listed widths exists for this ARCH: its default width
                if len(archs) > 1:      # Optuna keeps one distribution per parameter name
                    name = f"ALPHA ({arch})"
                variables["ALPHA"] = trial.suggest_categorical(name, choices)
            elif p.name == "DEPTH" and arch != "mobilenet_v1":
                continue                # DEPTH cuts MobileNetV1's blocks only
            elif p.choices:
                variables[name] = trial.suggest_categorical(name, list(p.choices))
            else:
                variables[name] = str(trial.suggest_int(name, p.low, p.high, step=p.step))
        return variables


def _check_values(param, base, board):
    """Every value of `param` must be one the build accepts (ALPHA: for at least one ARCH of the space)."""
    values = param.values() if param.choices else [str(param.low), str(param.high)]
    archs = [base.get("ARCH") or config.VARIABLES["ARCH"][0]]
    for value in values:
        errors = []
        for arch in (base.get("_ARCHS") or archs) if param.name == "ALPHA" else [None]:
            raw = {k: v for k, v in base.items() if not k.startswith("_")}
            raw[param.name] = value
            if arch:
                raw["ARCH"] = arch
                if arch != "mobilenet_v1":
                    raw.pop("DEPTH", None)      # DEPTH cuts MobileNetV1 only; other ARCH trials leave it out
            try:
                config.parse(raw, board)
                errors = []
                break
            except ConfigError as e:
                errors.append(str(e))
        if errors:
            raise ConfigError(f"{param.where}: {param.name} = {param.describe()}: {errors[0]}; change the search "
                              "space")


def resolve(resolved, arguments, board, tune_sections):
    """The Space of one study: `resolved` (profiles.Resolved, the values in force), the command line
    `arguments`, the board dict, `tune_sections` {NAME: (text, where)} from the profile file's [tune] sections."""
    from . import settings

    entries = dict(tune_sections)
    for name, value in arguments.items():
        if is_space_value(name, value):
            entries[name] = (value, "command line")
        elif name in entries and name in TUNABLE:
            del entries[name]           # one value on the command line fixes it for this study
    source = ", ".join(dict.fromkeys(re.sub(r":\d+ ", " ", where) for _, where in entries.values()))
    if not entries:
        entries = {k: (v, f"default space for {board['name']}") for k, v in default_space(board).items()
                   if k not in arguments}
        source = f"the default space for {board['name']} (codegen/tune/space.py)"
    params = [_parse_one(name, text, where) for name, (text, where) in entries.items()]
    searched = {p.name for p in params}
    base = {k: v for k, v in resolved.raw.items() if k not in searched and k not in settings.TUNE_VARIABLES
            and k != "ENV" and not is_space_value(k, v)}
    base["BOARD"] = board["name"]
    space = Space(params, base, board["name"], source)
    check_base = dict(base)
    check_base["_ARCHS"] = space.archs()
    for p in space.params:
        if p.name == "ARCH":
            _check_values(p, {k: v for k, v in base.items() if k != "DEPTH"}, board)
    for p in space.params:
        if p.name != "ARCH":
            _check_values(p, check_base, board)
    return space
