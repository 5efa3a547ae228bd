"""`scons tune` (codegen/tune): the search space, the study's bookkeeping, its storage and its report.

Fast tests drive the study with a stand-in runner (no scons, no training) or run scons only to its first error
line; the `heavy` ones run real studies of the tiny configuration (SIZE=32, SAMPLES=16, EPOCHS=1): an
infeasible candidate never trains, a saved trial rebuilds through a profile with a no-op rerun, a study killed
with kill -9 resumes, and two workers share one study in a PostgreSQL server started for the test.
"""
import json
import os
import random
import subprocess
import sys
import time

import pytest

from codegen import config, profiles
from codegen import boards
from codegen.errors import ConfigError
from codegen.tune import command, report, settings, space as space_mod, storage
from helpers import ROOT, built_stages, scons_exe

TINY_TUNE = {"SAMPLES": "16", "EPOCHS": "1", "REP_SAMPLES": "8", "BATCH": "8", "CHANNELS": "1"}


def resolved_for(arguments, ini=None, tmp_path=None):
    path = ini or os.path.join(str(tmp_path or "/nonexistent"), "none.ini")
    return profiles.resolve(arguments, path)


def space_for(arguments, board="nano33ble", ini=None, tmp_path=None):
    arguments = dict(arguments, BOARD=board)
    res = resolved_for(arguments, ini, tmp_path)
    entries = {k: v for k, v in res.profiles.tune_entries(res.env).items() if k not in settings.TUNE_VARIABLES}
    return space_mod.resolve(res, arguments, boards.get(board), entries)


# --- the search space: a generator of spaces, good and bad -------------------------------------------------------

GOOD = {"ARCH": ["mobilenet_v1", "mobilenet_v2"], "ALPHA": ["0.25", "0.5", "0.75", "1.0", "0.35"],
        "SIZE": ["32", "48", "64", "96"], "CHANNELS": ["1", "3"], "DEPTH": ["1", "2", "5", "13"],
        "EPOCHS": ["1", "3", "20"], "LR": ["0.001", "0.005"], "BATCH": ["8", "32"]}
BAD = {"ALPHA": ["0.3", "two"], "SIZE": ["7", "x"], "CHANNELS": ["2"], "DEPTH": ["14", "0"], "EPOCHS": ["0"],
       "LR": ["-1"], "ARCH": ["resnet"], "BATCH": ["0"]}


def random_space(rng):
    """A command line with 1-4 searched variables, each a list or a range, some values bad; and whether the
    build would accept every value (ALPHA: for some ARCH of the space)."""
    names = rng.sample(sorted(GOOD), rng.randint(1, 4))
    arguments, ok = {}, True
    archs = ["mobilenet_v1"]
    for name in names:
        if name in ("SIZE", "DEPTH", "EPOCHS") and rng.random() < 0.3:
            low = rng.choice([0, 1, 2, 32]) if name != "SIZE" else rng.choice([7, 32, 40])
            high = low + rng.choice([-1, 0, 2, 8])
            arguments[name] = f"{low}..{high}"
            lo_ok = {"SIZE": 32, "DEPTH": 1, "EPOCHS": 1}[name]
            ok &= high >= low and low >= lo_ok and (name != "DEPTH" or high <= 13)
            continue
        values = rng.sample(GOOD[name], min(len(GOOD[name]), rng.randint(1, 3)))
        if rng.random() < 0.3:
            values.append(rng.choice(BAD[name]))
            ok = False
        if len(values) == 1:
            values.append(values[0] if rng.random() < 0.2 else rng.choice(BAD[name]))
            ok = False
        arguments[name] = ",".join(values)
        if name == "ARCH":
            archs = [v for v in values if v in config.ARCH_ALPHAS] or archs
    if "ALPHA" in arguments and ok:
        alphas = arguments["ALPHA"].split(",")
        ok = all(any(float(a) in config.ARCH_ALPHAS[arch] for arch in archs) for a in alphas)
    return arguments, ok


def test_generated_spaces_are_accepted_exactly_when_every_value_builds():
    """Property: a space is accepted iff the build accepts each of its values; a refused one is ONE line that
    names the variable and says to change the space; an accepted one samples only values the build takes."""
    import optuna

    rng = random.Random(24)
    seen = {True: 0, False: 0}
    for _ in range(120):
        arguments, ok = random_space(rng)
        try:
            space = space_for(arguments)
        except ConfigError as e:
            message = str(e)
            assert not ok, f"{arguments}: refused a good space: {message}"
            assert "\n" not in message and "command line" in message and "change the search space" in message \
                or "range" in message or "twice" in message, (arguments, message)
            seen[False] += 1
            continue
        assert ok, f"{arguments}: accepted a space with a value the build refuses"
        seen[True] += 1
        study = optuna.create_study(directions=["maximize", "minimize"],
                                    sampler=optuna.samplers.RandomSampler(seed=rng.randint(0, 9999)))
        for _ in range(3):
            trial = study.ask()
            candidate = space.suggest(trial)
            config.parse({**space.base, **candidate}, boards.get("nano33ble"))     # raises if not buildable
            study.tell(trial, [0.5, 1.0])
        # a small space is enumerated: each candidate once, and exactly the ones `suggest` can give
        everything = space.candidates(limit=40)
        if everything is not None:
            study = optuna.create_study(directions=["maximize", "minimize"])
            for params in everything:
                study.enqueue_trial(params)
            got = []
            for _ in everything:
                trial = study.ask()
                got.append(tuple(sorted(space.suggest(trial).items())))
                config.parse({**space.base, **dict(got[-1])}, boards.get("nano33ble"))
                study.tell(trial, [0.5, 1.0])
            assert len(set(got)) == len(got) == len(everything), arguments
    assert seen[True] > 20 and seen[False] > 20, seen


def test_space_from_profile_sections_with_lines_and_precedence(tmp_path):
    ini = tmp_path / "tinyml.ini"
    ini.write_text("[tune]\nSIZE = 32, 48\nALPHA = 0.25\nTUNE_TRIALS = 5\n\n[tune:small]\nDEPTH = 1..3\n"
                   "SIZE =\n  32\n  40\n\n[env:small]\nBOARD = mega\n")
    space = space_for({"ENV": "small"}, board="mega", ini=str(ini))
    by = space.by_name()
    assert by["SIZE"].values() == ["32", "40"] and by["SIZE"].where.endswith("[tune:small]")
    assert by["DEPTH"].values() == ["1", "2", "3"] and by["ALPHA"].values() == ["0.25"]
    # the command line: a list replaces, one value fixes
    space = space_for({"ENV": "small", "SIZE": "48", "DEPTH": "2,3"}, board="mega", ini=str(ini))
    assert "SIZE" not in space.by_name() and space.base["SIZE"] == "48"
    assert space.by_name()["DEPTH"].values() == ["2", "3"]
    ini.write_text("[tune]\nSIZE = 32, 7\n")
    with pytest.raises(ConfigError, match=r"tinyml.ini:2 \[tune\]: SIZE = 32, 7: SIZE=7 is too small"):
        space_for({}, ini=str(ini))
    ini.write_text("[tune]\nBOARD = mega, uno\n")
    with pytest.raises(ConfigError, match=r"tinyml.ini:2 \[tune\]: BOARD cannot be searched"):
        space_for({}, ini=str(ini))


def test_candidates_follow_arch():
    space = space_for({"ARCH": "mobilenet_v1,mobilenet_v2", "ALPHA": "0.35,0.5,0.25", "DEPTH": "1..2"})
    everything = space.candidates(limit=100)
    v1 = [c for c in everything if c["ARCH"] == "mobilenet_v1"]
    v2 = [c for c in everything if c["ARCH"] == "mobilenet_v2"]
    assert len(v1) == 2 * 2 and all("DEPTH" in c for c in v1)       # ALPHA 0.5, 0.25 x DEPTH 1, 2
    assert len(v2) == 2 and not any("DEPTH" in c for c in v2)        # ALPHA 0.35, 0.5; no DEPTH
    assert space.candidates(limit=5) is None


def test_default_space_per_board():
    nano, mega = space_for({}), space_for({}, board="mega")
    assert nano.describe() == "ALPHA 0.25, 0.5; SIZE 48, 64, 96; CHANNELS 1, 3"
    assert mega.describe() == "SIZE 32, 48; DEPTH 1..3; CHANNELS 1"
    assert "default space" in mega.source


@pytest.mark.parametrize("raw,message", [
    ({"TUNE_TRIALS": "0"}, "TUNE_TRIALS=0 is too small"),
    ({"TUNE_JOBS": "two"}, "TUNE_JOBS='two' is not a whole number"),
    ({"LATENCY_MS": "-5"}, "LATENCY_MS='-5' is not a positive number"),
    ({"TUNE_TIME": "soon"}, "TUNE_TIME='soon' is not a duration"),
])
def test_bad_tune_settings(raw, message):
    with pytest.raises(ConfigError, match=message):
        settings.parse(raw)


def test_durations():
    assert [settings.duration_seconds("T", v) for v in ("90", "90s", "2m", "1.5h", "")] == [90, 90, 120, 5400, None]


# --- the study's bookkeeping with a stand-in runner ----------------------------------------------------------------

class FakeRunner:
    """Sizes grow with SIZE; SIZE >= 64 is over the board's RAM. Records what it was asked to build."""

    def __init__(self, folder):
        self.folder = folder
        self.built = []
        self.probed = []

    def variables(self, candidate):
        return dict(candidate, BOARD="nano33ble")

    def trial_dir(self, number):
        return os.path.join(self.folder, f"trial-{number}")

    def _measure(self, candidate):
        size = int(candidate["SIZE"])
        return {"ram": size * 4000, "ram_limit": 200_000, "flash": 300_000, "flash_limit": 983_040,
                "latency_ms": size * 0.5}

    def probe(self, candidate):
        self.probed.append(candidate)
        m = self._measure(candidate)
        if m["ram"] > m["ram_limit"]:
            m["why_not"] = f"RAM over by {m['ram'] - m['ram_limit']:,} B"
        return m

    def build(self, number, candidate):
        self.built.append((number, candidate))
        return dict(self._measure(candidate), accuracy=0.5 + int(candidate["SIZE"]) / 1000, float_accuracy=0.6)


def fake_study(tmp_path, trials=6, jobs=1, latency=None, sizes="32,48,64,96"):
    sp = space_for({"SIZE": sizes})
    tune_settings = settings.parse({"TUNE_TRIALS": str(trials), "TUNE_JOBS": str(jobs),
                                    "LATENCY_MS": str(latency or "")})
    board = boards.get("nano33ble")
    study = command.open_study(tune_settings, sp, board, str(tmp_path))
    runner = FakeRunner(str(tmp_path))
    lines = []
    worker = command.Study(study, sp, runner, board, tune_settings, out=lines.append)
    return worker, runner, lines, sp, tune_settings


def test_infeasible_candidates_never_build_and_the_study_reports_them(tmp_path):
    worker, runner, lines, sp, tune_settings = fake_study(tmp_path, trials=8, latency=30)
    worker.run()
    records = [report.record(t) for t in worker.study.get_trials()]
    assert len(records) == 8 and all(r["state"] == "complete" for r in records)
    for r in records:
        size = int(r["variables"]["SIZE"])
        assert r["trained"] == (size < 64 and size * 0.5 <= 30), r
        assert (r["why_not"] is None) == r["trained"]
    assert sorted(n for n, _ in runner.built) == sorted(r["number"] for r in records if r["trained"])
    assert len(lines) == 8 and lines[-1].startswith("[tune 8/8] trial ")
    assert all("| best: trial " in line or "| best: none fits yet" in line for line in lines)
    best = report.chosen(records)
    assert best["variables"]["SIZE"] == "48" and best["number"] in report.pareto_front(records)
    assert command.finish(worker.study, sp, boards.get("nano33ble"), tune_settings, str(tmp_path), "x",
                          out=lines.append) == 0
    saved = json.loads((tmp_path / "tune.json").read_text())
    assert saved["chosen"] == best["number"] and (tmp_path / "pareto.png").stat().st_size > 10_000
    assert "not trained: RAM over by" in (tmp_path / "tune.txt").read_text()


def test_a_budget_nothing_meets_is_one_error_line(tmp_path, capsys):
    worker, runner, lines, sp, tune_settings = fake_study(tmp_path, trials=2, latency=1, sizes="64,96")
    worker.run()
    assert runner.built == []
    assert command.finish(worker.study, sp, boards.get("nano33ble"), tune_settings, str(tmp_path), "x",
                          out=lines.append) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no candidate fits nano33ble" in errors[0] and "LATENCY_MS=" in errors[0]


def test_no_verdict_while_another_worker_still_runs_a_trial(tmp_path):
    """A worker whose own candidates were all infeasible while another machine still trains one: its part is
    done (exit 0, the table marked partial), not "no candidate fits" (seen with two workers on PostgreSQL)."""
    worker, runner, lines, sp, tune_settings = fake_study(tmp_path, trials=3, sizes="32,64,96")
    for size in ("32", "64", "96"):
        worker.study.enqueue_trial({"SIZE": size})
    other = worker.study.ask()
    other.set_user_attr("variables", sp.suggest(other))
    other.set_user_attr("owner", storage.owner())      # alive: "another worker" still on SIZE=32
    worker.run()
    assert runner.built == [] and len(lines) == 2       # this worker's 64 and 96: over the RAM
    said = []
    assert command.finish(worker.study, sp, boards.get("nano33ble"), tune_settings, str(tmp_path), "x",
                          out=said.append) == 0
    assert any(f"trial(s) {other.number} still running on other workers; the table is partial" in s for s in said)


def test_parallel_jobs_share_the_count(tmp_path):
    worker, runner, lines, *_ = fake_study(tmp_path, trials=5, jobs=3)
    worker.run()
    assert len(worker.study.get_trials()) == 5 and len(lines) == 5
    assert sorted(int(line.split("/")[0].split()[-1]) for line in lines) == [1, 2, 3, 4, 5]


def test_a_trial_left_running_by_a_dead_worker_is_failed_and_queued_again(tmp_path):
    from optuna.trial import TrialState

    worker, runner, lines, sp, tune_settings = fake_study(tmp_path, trials=3)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    trial = worker.study.ask()
    params = sp.suggest(trial)
    trial.set_user_attr("owner", {**storage.owner(), "pid": dead.pid, "start": "1"})
    alive = worker.study.ask()          # this process's: left alone
    sp.suggest(alive)
    alive.set_user_attr("owner", storage.owner())
    # a new worker on the same journal file: the dead one's trial is failed and queued with its values
    study2 = command.open_study(tune_settings, sp, boards.get("nano33ble"), str(tmp_path))
    said = []
    assert storage.recover_stale(study2, said.append) == [trial.number]
    states = {t.number: t.state for t in study2.get_trials()}
    assert states[trial.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    waiting = [t for t in study2.get_trials() if t.state == TrialState.WAITING]
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == trial.number
    again = study2.ask()                # the next candidate is the one that was cut short
    assert again.number == waiting[0].number and sp.suggest(again) == params
    assert "left running by a worker that is gone" in said[0]
    assert storage.recover_stale(study2, said.append) == []        # once


def test_pareto_front_property():
    """Random records: every front member is undominated, everything else is dominated by a front member;
    the chosen trial is on the front."""
    rng = random.Random(7)
    for _ in range(50):
        records = []
        for n in range(rng.randint(1, 12)):
            trained = rng.random() < 0.8
            records.append({"number": n, "feasible": trained and rng.random() < 0.8, "trained": trained,
                            "accuracy": rng.choice([0.5, 0.6, 0.7, 0.8]) if trained else None,
                            "latency_ms": rng.choice([10.0, 20.0, 30.0])})
        front = report.pareto_front(records)
        pool = [r for r in records if r["feasible"]]

        def dominates(a, b):
            return (a["accuracy"] >= b["accuracy"] and a["latency_ms"] <= b["latency_ms"]
                    and (a["accuracy"], a["latency_ms"]) != (b["accuracy"], b["latency_ms"]))
        for r in pool:
            assert (r["number"] in front) == (not any(dominates(o, r) for o in pool))
        best = report.chosen(records)
        assert (best is None) == (not pool)
        if best:
            assert best["number"] in front


# --- scons tune: one error line each -------------------------------------------------------------------------------

def scons_tune(tmp_path, *targets, **variables):
    cmd = [scons_exe(), "-C", ROOT, f"--project-conf={tmp_path / 'none.ini'}", *targets,
           *[f"{k}={v}" for k, v in {"BUILD_DIR": str(tmp_path / "build"), **variables}.items()]]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("targets,variables,expected", [
    (["tune"], {"BOARD": "nano33ble,mega"}, "searches for one board at a time"),
    (["tune"], {"BOARD": "pico"}, "BOARD=pico has no emulator"),
    (["tune"], {"SIZE": "32,7"}, "command line: SIZE = 32, 7: SIZE=7 is too small"),
    (["tune"], {"DEPTH": "5..2"}, "DEPTH=5..2 is an empty range"),
    (["tune"], {"TUNE_TRIALS": "0"}, "TUNE_TRIALS=0 is too small"),
    (["tune"], {"TUNE_STORAGE": "postgresql://tune:pw@127.0.0.1:9/tune"},
     "TUNE_STORAGE=postgresql://tune:***@127.0.0.1:9/tune: cannot reach the study storage"),
    (["tune"], {"TUNE_STORAGE": "redis://x"}, "is not a database URL"),
    (["tune", "check"], {}, "`scons tune` runs its own builds; run it alone"),
    (["tune", "save"], {"ENV": "best"}, "needs ENV=NAME (the profile to write) and TRIAL=n"),
    (["tune", "save"], {"ENV": "best", "TRIAL": "1"}, "no study found"),
])
def test_scons_tune_errors_are_one_line(tmp_path, targets, variables, expected):
    proc = scons_tune(tmp_path, *targets, **variables)
    errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stdout + proc.stderr
    assert expected in errors[0], errors[0]
    assert "Traceback" not in proc.stderr and "pw@" not in proc.stdout + proc.stderr
    assert not (tmp_path / "build" / "tune").exists() or "STORAGE" in str(variables)


def test_dry_run_says_what_it_would_do_and_writes_nothing(tmp_path):
    """`scons -n tune`: the storage, the space, the trials done and left, the queue; exit 0, nothing made."""
    proc = scons_tune(tmp_path, "-n", "tune", SIZE="32,48", TUNE_TRIALS="3", LATENCY_MS="45")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "study.journal (not created yet); 0 of 2 trial(s) done; space: SIZE 32, 48 (command line)" in proc.stdout
    assert "latency budget 45 ms" in proc.stdout and "2 would run now" in proc.stdout
    assert [line.strip() for line in proc.stdout.splitlines() if line.startswith("  ")] == ["SIZE=32", "SIZE=48"]
    assert "dry run (scons -n): nothing probed, trained or written" in proc.stdout
    assert not (tmp_path / "build").exists()
    # `scons -n tune save`: the profile it would write, not written
    save = scons_tune(tmp_path, "-n", "tune", "save", ENV="best", TRIAL="0")
    assert save.returncode == 2 and "no study found" in save.stderr


def test_dry_run_reads_a_study_without_changing_it(tmp_path):
    worker, runner, lines, sp, tune_settings = fake_study(tmp_path, trials=2)
    worker.run()
    journal = tmp_path / "study.journal"
    before, files = journal.read_bytes(), sorted(tmp_path.iterdir())
    done = sorted(r["variables"]["SIZE"] for r in (report.record(t) for t in worker.study.get_trials()))
    said = []
    assert command.plan(dict(tune_settings, trials=4), sp, boards.get("nano33ble"), str(tmp_path),
                        out=said.append) == 0
    assert journal.read_bytes() == before and sorted(tmp_path.iterdir()) == files
    assert "2 of 4 trial(s) done" in said[0] and "(not created yet)" not in said[0]
    queued = [line.strip() for line in said if line.startswith("  ")]
    assert sorted(queued + [f"SIZE={s}" for s in done]) == [f"SIZE={s}" for s in ("32", "48", "64", "96")], said


@pytest.mark.heavy
def test_dry_run_creates_no_table_in_postgresql(tmp_path, postgres):
    import sqlalchemy

    proc = scons_tune(tmp_path, "-n", "tune", SIZE="32,48", TUNE_STORAGE=postgres)
    assert proc.returncode == 0 and "(not created yet); 0 of 2 trial(s) done" in proc.stdout, proc.stdout + proc.stderr
    engine = sqlalchemy.create_engine(postgres)
    assert not sqlalchemy.inspect(engine).get_table_names()
    engine.dispose()


# --- real studies (heavy) --------------------------------------------------------------------------------------------

# SIZE=32 takes ~22 ms per inference on the nano33ble's M4 at 64 MHz in instructions, ~30.5 ms in estimated
# cycles; SIZE=48 ~46 ms in instructions, ~65 ms in cycles: with a 45 ms budget the second is infeasible, which its
# untrained probe shows, so it must never train.
STUDY = {**TINY_TUNE, "BOARD": "nano33ble", "SIZE": "32,48", "LATENCY_MS": "45", "TUNE_TRIALS": "2"}


def tune_cmd(conf, **variables):
    return [scons_exe(), "-C", ROOT, f"--project-conf={conf}", "tune", *[f"{k}={v}" for k, v in variables.items()]]


def tune_json(build):
    return json.loads((build / "tune" / "nano33ble" / "tune.json").read_text())


@pytest.fixture(scope="session")
def tune_cache(tmp_path_factory):
    """One CACHE_DIR for the real studies, as a team shares one: the second study's training comes from it."""
    return tmp_path_factory.mktemp("tune_cache")


@pytest.fixture(scope="module")
def resumed_study(tmp_path_factory, tune_cache):
    """A study killed with kill -9 (its whole process group) while its second trial runs, then run again."""
    import signal

    tmp = tmp_path_factory.mktemp("tune_resume")
    build = tmp / "build"
    variables = {**STUDY, "BUILD_DIR": str(build), "CACHE_DIR": str(tune_cache)}
    first = subprocess.Popen(tune_cmd(tmp / "none.ini", **variables), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen = []
    for line in first.stdout:
        seen.append(line)
        if line.startswith("[tune 1/2]"):
            break
    time.sleep(3)       # the worker asks for trial 1 and starts probing it
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    killed_at = time.time()
    again = subprocess.run(tune_cmd(tmp / "none.ini", **variables), capture_output=True, text=True, timeout=1800)
    return {"tmp": tmp, "build": build, "first": "".join(seen), "again": again, "killed_at": killed_at,
            "variables": variables}


@pytest.mark.heavy
def test_resume_after_kill_9_loses_no_finished_trial(resumed_study):
    first, again = resumed_study["first"], resumed_study["again"]
    assert "[tune 1/2] trial 0: SIZE=32 -> int8 " in first, first
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 of 2 trial(s) done" in again.stdout
    assert "trial(s) 1 were left running by a worker that is gone (killed?); marked failed and queued again" \
        in again.stdout
    summary = tune_json(resumed_study["build"])
    states = {r["number"]: r["state"] for r in summary["trials"]}
    assert states == {0: "complete", 1: "failed", 2: "complete"}, states
    assert summary["trials"][2]["retry_of"] == 1 and summary["trials"][2]["variables"] == {"SIZE": "48"}
    # trial 0 was not built again: its log is from before the kill
    assert (resumed_study["build"] / "tune" / "nano33ble" / "trial-0" / "build.log").stat().st_mtime \
        < resumed_study["killed_at"]
    assert summary["chosen"] == 0 and summary["front"] == [0]


@pytest.mark.heavy
def test_infeasible_candidates_never_train(resumed_study):
    summary = tune_json(resumed_study["build"])
    infeasible = [r for r in summary["trials"] if r["state"] == "complete" and not r["trained"]]
    assert [r["variables"] for r in infeasible] == [{"SIZE": "48"}]
    assert "latency" in infeasible[0]["why_not"] and infeasible[0]["latency_ms"] > 45
    tune_dir = resumed_study["build"] / "tune" / "nano33ble"
    trained = sorted(p.relative_to(tune_dir).parts[0] for p in tune_dir.rglob("model.keras"))
    assert trained == ["trial-0"], trained
    assert not (tune_dir / "trial-1").exists() and not (tune_dir / "trial-2").exists()
    assert "not trained: latency" in (tune_dir / "tune.txt").read_text()
    assert (tune_dir / "pareto.png").stat().st_size > 10_000


@pytest.mark.heavy
def test_saved_trial_rebuilds_through_its_profile_with_a_noop_rerun(resumed_study):
    import hashlib

    tmp, build = resumed_study["tmp"], resumed_study["build"]
    ini = tmp / "tinyml.ini"
    save = subprocess.run([scons_exe(), "-C", ROOT, f"--project-conf={ini}", "tune", "save", "ENV=best", "TRIAL=0",
                           f"BUILD_DIR={build}"], capture_output=True, text=True, timeout=300)
    assert save.returncode == 0, save.stdout + save.stderr
    text = ini.read_text()
    assert "[env:best]" in text and "SIZE = 32" in text and "BOARD = nano33ble" in text and "CACHE_DIR = " in text
    normal = tmp / "normal"
    cmd = [scons_exe(), "-C", ROOT, f"--project-conf={ini}", "ENV=best", f"BUILD_DIR={normal}", "report", "memory"]
    first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    trial = build / "tune" / "nano33ble" / "trial-0" / "nano33ble"
    for name in ("model.keras", "model.tflite", "model_mlf.tar", "memory.json"):
        assert hashlib.sha256((normal / "nano33ble" / name).read_bytes()).digest() == \
            hashlib.sha256((trial / name).read_bytes()).digest(), name
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0 and built_stages(again.stdout) == [], again.stdout


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres(tmp_path):
    """A PostgreSQL server of its own on 127.0.0.1 (Debian's postgresql: initdb + pg_ctl, as the postgres user
    when run as root); yields its URL. Skips when the binaries are absent."""
    import glob
    import shutil
    import tempfile

    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
    initdb = shutil.which("initdb") or (os.path.join(bins[-1], "initdb") if bins else None)
    if not initdb or not os.path.exists(initdb):
        pytest.skip("PostgreSQL is not installed (Debian: apt-get install postgresql; ./dev setup does it)")
    pg_ctl = os.path.join(os.path.dirname(os.path.realpath(initdb)), "pg_ctl")
    folder = tempfile.mkdtemp(prefix="tune-pg-")
    prefix = []
    if os.geteuid() == 0:
        import pwd

        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and there is no postgres user to run the server as")
        os.chown(folder, user.pw_uid, user.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = os.path.join(folder, "data")
    subprocess.run([*prefix, os.path.realpath(initdb), "-D", data, "-U", "tune", "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True, timeout=300)
    subprocess.run([*prefix, pg_ctl, "-D", data, "-l", os.path.join(folder, "server.log"), "-w", "-o",
                    f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True, timeout=120)
    try:
        yield f"postgresql://tune@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, pg_ctl, "-D", data, "-m", "immediate", "stop"], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)


class SlowRunner(FakeRunner):
    """A FakeRunner whose builds take a moment, so that workers overlap."""

    def build(self, number, candidate):
        time.sleep(0.3)
        return super().build(number, candidate)


def race_worker(folder, url, go, arguments, trials):
    """One `scons tune` worker with a stand-in runner, started by `test_workers_started_at_the_same_instant_...`
    in its own process: opens the study, then waits for the go file, then queues and runs its part of it.
    Prints what it trained (JSON)."""
    sp = space_for(arguments)
    tune_settings = settings.parse({"TUNE_TRIALS": str(trials), "TUNE_STORAGE": url})
    board = boards.get("nano33ble")
    study = command.open_study(tune_settings, sp, board, folder)
    open(os.path.join(folder, f"ready-{os.getpid()}"), "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    tune_settings = command.prepare(study, sp, tune_settings, out=lambda line: None)
    runner = SlowRunner(folder)
    command.Study(study, sp, runner, board, tune_settings, out=lambda line: None).run()
    print(json.dumps([candidate for _, candidate in runner.built]))


@pytest.mark.parametrize("where", ["journal", pytest.param("postgresql", marks=pytest.mark.heavy)])
def test_workers_started_at_the_same_instant_never_train_a_candidate_twice(tmp_path, request, where):
    """Four workers released at the same instant on one study of an exhaustively tried space (12 candidates,
    TUNE_TRIALS=12): each candidate is trained exactly once, and the study has exactly its 12 trials. Without the
    study's claim lock, Optuna's enqueue_trial(skip_if_exists=True) (read, then write) let every worker queue
    every candidate, and two workers then popped the same one."""
    import optuna

    url = request.getfixturevalue("postgres") if where == "postgresql" else ""
    arguments = {"SIZE": "32,40,48", "EPOCHS": "1,2", "LR": "0.001,0.005"}
    go = tmp_path / "go"
    script = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]; import json, test_tune; "
              "test_tune.race_worker(sys.argv[3], sys.argv[4], sys.argv[5], json.loads(sys.argv[6]), 12)")
    workers = [subprocess.Popen([sys.executable, "-c", script, os.path.dirname(__file__), ROOT, str(tmp_path), url,
                                 str(go), json.dumps(arguments)], cwd=ROOT, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(4)]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    go.touch()
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0] * len(workers), [err for _, err in outputs]
    trained = [tuple(sorted(c.items())) for out, _ in outputs for c in json.loads(out.strip().splitlines()[-1])]
    assert sorted(trained) == sorted(set(trained)) and len(trained) == 12, trained
    if url:
        storage_obj = optuna.storages.RDBStorage(url)
        (summary,) = optuna.get_all_study_summaries(storage_obj)
        trials = optuna.load_study(study_name=summary.study_name, storage=storage_obj).get_trials()
    else:
        trials = command.open_study(settings.parse({}), space_for(arguments), boards.get("nano33ble"),
                                    str(tmp_path)).get_trials()
    assert len(trials) == 12 and {t.state.name for t in trials} == {"COMPLETE"}, \
        [(t.number, t.state.name, t.params) for t in trials]


@pytest.mark.heavy
def test_two_workers_share_one_study_in_postgresql(tmp_path, postgres, tune_cache):
    import optuna

    common = {**STUDY, "TUNE_STORAGE": postgres, "CACHE_DIR": str(tune_cache)}
    workers = []
    for name in ("a", "b"):         # two "machines": their own build dirs, one study, one cache
        workers.append(subprocess.Popen(tune_cmd(tmp_path / "none.ini", **common, BUILD_DIR=tmp_path / name),
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        time.sleep(8)
    outputs = [w.communicate(timeout=1800)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    progress = [line for out in outputs for line in out.splitlines() if line.startswith("[tune ")]
    assert len(progress) == 2, progress
    numbers = sorted(int(line.split(" trial ")[1].split(":")[0]) for line in progress)
    assert numbers == [0, 1], progress
    storage = optuna.storages.RDBStorage(postgres)
    (summary,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=summary.study_name, storage=storage).get_trials()
    assert len(trials) == 2 and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted(t.user_attrs["variables"]["SIZE"] for t in trials) == ["32", "48"]
    # a third run adds nothing and prints the union of both workers' results
    union = subprocess.run(tune_cmd(tmp_path / "none.ini", **common, BUILD_DIR=tmp_path / "a"), capture_output=True,
                           text=True, timeout=600)
    assert union.returncode == 0 and "2 of 2 trial(s) done" in union.stdout, union.stdout + union.stderr
    assert not [line for line in union.stdout.splitlines() if line.startswith("[tune ")]
    table = (tmp_path / "a" / "tune" / "nano33ble" / "tune.txt").read_text()
    assert ">0 " in table and "not trained: latency" in table
