"""The build variables of `scons tune` (TUNE_TRIALS=, TUNE_TIME=, LATENCY_MS=, TUNE_JOBS=, TUNE_STORAGE=,
TRIAL=) and their validation. codegen.config merges VARIABLES into its table, so `scons -h` lists them, profiles
may set them and an unknown spelling is refused; they enter no stage's signature (config.parse ignores them).
"""
import re

from ..errors import ConfigError

# name: (default, help)
VARIABLES = {
    "TUNE_TRIALS": ("12", "`scons tune`: trials in the study (all workers together); a rerun adds none once reached"),
    "TUNE_TIME": ("", "`scons tune`: start no new trial after this long, e.g. 30m, 2h, 900 (seconds); empty: no "
                      "limit"),
    "LATENCY_MS": ("", "`scons tune`: latency budget per inference in ms at the board's clock (Cortex-M4: the "
                       "cycles estimated in QEMU; AVR: simavr's measured time); empty: no budget"),
    "TUNE_JOBS": ("1", "`scons tune`: trials run at the same time by this worker"),
    "TUNE_STORAGE": ("", "`scons tune`: where the study lives; empty: a journal file under the build dir; "
                         "postgresql://user:password@host/db shares one study between machines"),
    "TRIAL": ("", "`scons tune save ENV=NAME TRIAL=n`: the trial whose values to write into profile NAME"),
}
TUNE_VARIABLES = tuple(VARIABLES)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h)?\s*$")


def _int(name, value, lo):
    try:
        v = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a whole number; e.g. {name}={VARIABLES[name][0] or 3}") \
            from None
    if v < lo:
        raise ConfigError(f"{name}={v} is too small; it must be at least {lo}")
    return v


def duration_seconds(name, value):
    """'90', '90s', '30m', '2h' -> seconds; empty -> None."""
    if not str(value).strip():
        return None
    match = _DURATION.match(str(value))
    if not match or float(match.group(1)) <= 0:
        raise ConfigError(f"{name}={value!r} is not a duration; e.g. {name}=30m, {name}=2h or {name}=900 (seconds)")
    return float(match.group(1)) * {"s": 1, None: 1, "m": 60, "min": 60, "h": 3600}[match.group(2)]


def parse(raw):
    """{NAME: string} (the values in force) -> the tune settings, or ConfigError naming the variable."""
    v = {k: str(raw.get(k, d)) for k, (d, _) in VARIABLES.items()}
    latency = None
    if v["LATENCY_MS"].strip():
        try:
            latency = float(v["LATENCY_MS"])
        except ValueError:
            latency = -1.0
        if not latency > 0:
            raise ConfigError(f"LATENCY_MS={v['LATENCY_MS']!r} is not a positive number of milliseconds; e.g. "
                              "LATENCY_MS=200, or leave it empty for no latency budget")
    return {
        "trials": _int("TUNE_TRIALS", v["TUNE_TRIALS"], 1),
        "time_s": duration_seconds("TUNE_TIME", v["TUNE_TIME"]),
        "latency_ms": latency,
        "jobs": _int("TUNE_JOBS", v["TUNE_JOBS"], 1),
        "storage": v["TUNE_STORAGE"].strip(),
        "trial": _int("TRIAL", v["TRIAL"], 0) if v["TRIAL"].strip() else None,
    }
