"""`scons tune` and `scons tune save`: the entry points SConstruct calls (the build files are read, nothing else).

    scons tune BOARD=nano33ble [TUNE_TRIALS=12] [TUNE_TIME=30m] [LATENCY_MS=200] [TUNE_JOBS=2] [TUNE_STORAGE=...]
    scons tune save ENV=NAME TRIAL=n
    scons -n tune ...                   what the study would do (the space, the trials left, the storage); runs
                                        and writes nothing

The study is Optuna's (multi-objective TPE with a constraints function: int8 accuracy up, latency down; RAM,
flash and the latency budget as constraints), asked and told trial by trial so that each trial can be checked
cheaply before it is trained (codegen.tune.runner). Results go to <BUILD_DIR>/tune/<BOARD>/: the study file,
trial-N/ (ordinary build folders), probes/, tune.json, tune.txt (the table) and pareto.png.
"""
import math
import os
import sys
import threading
import time

from .. import config
from .. import boards
from ..errors import ConfigError, PipelineError
from . import report, settings, space as space_mod, storage
from .runner import Runner, TrialError

DONE_ERROR = "error"        # a trial whose build failed (its error recorded): an answer, counted as done


def _err(message):
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()


def main(targets, arguments, resolved, project_conf, root, dry_run=False):
    """Runs `scons tune` (or `scons tune save`); returns the exit status. dry_run (`scons -n`): says what it
    would do and writes nothing."""
    try:
        if "save" in targets:
            if sorted(targets) != ["save", "tune"]:
                raise ConfigError("`scons tune save ENV=NAME TRIAL=n` writes a profile and builds nothing; run it "
                                  "alone")
            return save(arguments, resolved, project_conf, dry_run=dry_run)
        if targets != ["tune"]:
            others = " ".join(t for t in targets if t != "tune")
            raise ConfigError(f"`scons tune` runs its own builds; run it alone, then `scons {others}` (e.g. with "
                              "the profile `scons tune save` writes)")
        return run(arguments, resolved, root, dry_run=dry_run)
    except ConfigError as e:
        _err(e)
        return 2
    except PipelineError as e:      # e.g. the study's claim lock held too long by a stuck worker
        _err(e)
        return 1


def _tune_settings(resolved, entries):
    """The TUNE_* values in force: the command line and profile over [tune:ENV] over [tune]."""
    raw = {k: v for k, (v, _) in entries.items() if k in settings.TUNE_VARIABLES}
    raw.update({k: v for k, v in resolved.raw.items() if k in settings.TUNE_VARIABLES})
    try:
        return settings.parse(raw)
    except ConfigError as e:
        for key, (_, where) in entries.items():
            if key in str(e) and key not in resolved.raw:
                raise ConfigError(f"{where}: {e}") from None
        raise


def _board(resolved):
    names = [b.strip() for b in str(resolved.raw.get("BOARD", config.VARIABLES["BOARD"][0])).split(",") if b.strip()]
    if len(names) != 1:
        raise ConfigError(f"BOARD={','.join(names)}: `scons tune` searches for one board at a time; run it once "
                          "per board")
    board = boards.get(names[0])
    if not board.has_emulator:
        with_emulator = sorted(n for n, b in boards.all_boards().items() if b.has_emulator)
        raise ConfigError(f"BOARD={names[0]} has no emulator to measure a candidate's latency on; `scons tune` "
                          f"runs for {', '.join(with_emulator)}")
    return board


def tune_dir(build_dir, board_name):
    return os.path.abspath(os.path.join(build_dir or config.VARIABLES["BUILD_DIR"][0], "tune", board_name))


def _set_constraints(trial, measured, budget):
    """Optuna's constraints (<= 0: satisfied): bytes of RAM and flash over the board's, ms over the budget."""
    if measured.get("ram") is None:         # not even generated for this board (an AVR array over 32,767 B)
        values = {"ram_over_bytes": 1.0, "flash_over_bytes": 1.0, "latency_over_ms": 0.0}
    else:
        latency = measured.get("latency_ms")
        values = {"ram_over_bytes": measured["ram"] - measured["ram_limit"],
                  "flash_over_bytes": measured["flash"] - measured["flash_limit"],
                  "latency_over_ms": latency - budget if budget and latency is not None else 0.0}
    for key, value in values.items():
        trial.set_constraint(key, float(value))


def _why_not(measured, budget):
    reasons = []
    for what, name in (("ram", "RAM"), ("flash", "flash")):
        if measured.get(what) is not None and measured[what] > measured[f"{what}_limit"]:
            reasons.append(f"{name} over by {measured[what] - measured[what + '_limit']:,} B")
    if budget and measured.get("latency_ms") is not None and measured["latency_ms"] > budget:
        reasons.append(f"latency {measured['latency_ms']:,.1f} ms over the {budget:g} ms budget")
    return ", ".join(reasons) or None


def study_name(space, board, tune_settings):
    """The same space, fixed values, board and budget resume the same study."""
    return f"tune-{board['name']}-{space.key(tune_settings['latency_ms'])}"


def _quiet_optuna():
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def open_study(tune_settings, space, board, folder):
    import optuna

    _quiet_optuna()
    store = storage.open_storage(tune_settings["storage"], os.path.join(folder, "study.journal"))
    name = study_name(space, board, tune_settings)
    # One worker alone samples reproducibly (SEED=); workers sharing a database sample differently, else they
    # would start with the same candidates.
    seed = int(space.base.get("SEED") or 0) if not tune_settings["storage"] else None
    # Constraints come from each trial (Trial.set_constraint); `group` samples ALPHA per ARCH as its own space.
    sampler = optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True,
                                         n_startup_trials=max(3, min(10, tune_settings["trials"] // 3)))
    try:
        study = optuna.create_study(study_name=name, storage=store, sampler=sampler, load_if_exists=True,
                                    directions=["maximize", "minimize"])
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(f"cannot open the study {name} in "
                          f"{storage._shown_url(tune_settings['storage']) or folder} ({str(e).splitlines()[0]}); "
                          "check TUNE_STORAGE= or remove the study file") from None
    return study


def finished(trials):
    """The trials that count as done: complete, or failed with their error recorded (an answer too)."""
    from optuna.trial import TrialState

    return [t for t in trials if t.state == TrialState.COMPLETE
            or (t.state == TrialState.FAIL and DONE_ERROR in t.user_attrs)]


def prepare(study, space, tune_settings, out=print):
    """Before a worker's first trial, under the study's claim lock (so that workers starting at the same instant
    cannot both queue a candidate): trials left running by dead workers are failed and queued again, and a space
    no larger than the study is queued whole, each candidate once. Returns the settings with the study's size
    (an exhaustive space: its number of candidates)."""
    with storage.claim_lock(study):
        storage.recover_stale(study, out)
        everything = space.candidates(limit=tune_settings["trials"])
        if everything is None:
            return tune_settings
        # No larger than the study: each candidate once, in order (a sampler would repeat some and miss others).
        if len(everything) < tune_settings["trials"]:
            out(f"tune: the space has {len(everything)} candidate(s), fewer than TUNE_TRIALS="
                f"{tune_settings['trials']}: each is tried once")
        for params in everything:
            study.enqueue_trial(params, skip_if_exists=True)
        return dict(tune_settings, trials=len(everything))


class Study:
    """One worker's part of a study: asks Optuna for candidates until the study has its trials."""

    def __init__(self, study, space, runner, board, tune_settings, out=print):
        self.study = study
        self.space = space
        self.runner = runner
        self.board = board
        self.settings = tune_settings
        self.out = out
        self.lock = threading.Lock()
        self.started = time.monotonic()
        self.durations = []
        self.running = {}           # trial number -> optuna Trial, this worker's
        self.stopped = False

    def _finished(self, trials=None):
        return finished(trials if trials is not None else self.study.get_trials(deepcopy=False))

    def _next(self):
        """A new trial with its candidate, or None when the study has enough trials or time is up. Counted and
        asked under the study's claim lock: another worker (thread, process or machine) cannot count the same
        free places, nor take the same queued candidate."""
        from optuna.trial import TrialState

        with self.lock:
            if self.stopped:
                return None
            if self.settings["time_s"] and time.monotonic() - self.started > self.settings["time_s"]:
                return None
            with storage.claim_lock(self.study):
                trials = self.study.get_trials(deepcopy=False)
                running = [t for t in trials if t.state == TrialState.RUNNING]
                if len(self._finished(trials)) + len(running) >= self.settings["trials"]:
                    return None
                trial = self.study.ask()
                trial.set_user_attr("owner", storage.owner())
                candidate = self.space.suggest(trial)
                trial.set_user_attr("variables", candidate)
                trial.set_user_attr("build_variables", self.runner.variables(candidate))
            self.running[trial.number] = trial
            return trial, candidate

    def _run_one(self, trial, candidate):
        budget = self.settings["latency_ms"]
        t0 = time.monotonic()
        with storage.heartbeat(self.study, trial):
            values, state = self._evaluate(trial, candidate, budget)
        with self.lock:         # told and counted together: each progress line has its own done/total
            self.study.tell(trial, values, state=state)
            self.running.pop(trial.number, None)
            self.durations.append(time.monotonic() - t0)
            self._progress(trial.number)

    def _evaluate(self, trial, candidate, budget):
        """The probe, then (feasible only) the build: (Optuna values, state)."""
        from optuna.trial import TrialState

        values, state = None, TrialState.FAIL
        try:
            probe = self.runner.probe(candidate)
            trial.set_user_attr("probe", probe)
            why_not = probe.get("why_not") or _why_not(probe, budget)
            if why_not:         # infeasible before training: it never trains
                trial.set_user_attr("why_not", why_not)
                _set_constraints(trial, probe, budget)
                latency = probe.get("latency_ms")
                values = [0.0, latency if latency is not None else math.inf]
            else:
                trial.set_user_attr("trial_dir", self.runner.trial_dir(trial.number))
                result = self.runner.build(trial.number, candidate)
                trial.set_user_attr("result", result)
                why_not = _why_not(result, budget)
                if why_not:
                    trial.set_user_attr("why_not", why_not)
                _set_constraints(trial, result, budget)
                values = [result["accuracy"], result["latency_ms"]]
            state = TrialState.COMPLETE
        except (TrialError, PipelineError) as e:
            trial.set_user_attr(DONE_ERROR, str(e))
        except Exception as e:      # a bug here must not leave the trial RUNNING while this worker goes on
            import traceback

            traceback.print_exc()
            trial.set_user_attr(DONE_ERROR, f"internal error ({type(e).__name__}: {e}); please report it")
        return values, state

    def _progress(self, number):
        trials = self.study.get_trials(deepcopy=False)
        records = [report.record(t) for t in trials]
        done = len(self._finished(trials))
        mine = next(r for r in records if r["number"] == number)
        left = max(0, self.settings["trials"] - done)
        eta = sum(self.durations) / len(self.durations) * math.ceil(left / self.settings["jobs"]) if left else None
        if self.settings["time_s"] and eta is not None:
            eta = min(eta, max(0.0, self.settings["time_s"] - (time.monotonic() - self.started)))
        self.out(report.progress_line(min(done, self.settings["trials"]), self.settings["trials"], mine,
                                      report.chosen(records), eta))

    def _worker(self):
        while True:
            nxt = self._next()
            if nxt is None:
                return
            self._run_one(*nxt)

    def run(self):
        threads = [threading.Thread(target=self._worker, name=f"tune-{i}", daemon=True)
                   for i in range(self.settings["jobs"])]
        for t in threads:
            t.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.5)
        except KeyboardInterrupt:
            self.interrupted()
            raise

    def interrupted(self):
        """Ctrl-C: this worker's running trials are marked failed and queued again; finished ones stay."""
        from optuna.trial import TrialState

        with self.lock:
            self.stopped = True
            try:
                with storage.claim_lock(self.study, timeout_s=10):     # failed and queued again as one step
                    for number, trial in list(self.running.items()):
                        try:
                            self.study.tell(trial, state=TrialState.FAIL)
                            self.study.enqueue_trial(trial.params, user_attrs={"retry_of": number})
                        except Exception:
                            pass
            except Exception:   # no lock: the next `scons tune` finds them left running and recovers them
                pass
            self.running.clear()


def run(arguments, resolved, root, out=print, dry_run=False):
    entries = resolved.profiles.tune_entries(resolved.env)
    tune_settings = _tune_settings(resolved, entries)
    board = _board(resolved)
    space_entries = {k: v for k, v in entries.items() if k not in settings.TUNE_VARIABLES}
    space = space_mod.resolve(resolved, arguments, board, space_entries)
    try:
        config.parse(space.base, board)
    except ConfigError as e:
        raise ConfigError(resolved.locate(e)) from None
    build_dir = space.base.get("BUILD_DIR") or config.VARIABLES["BUILD_DIR"][0]
    folder = tune_dir(build_dir, board["name"])
    cache_dir = os.path.abspath(space.base.get("CACHE_DIR") or os.path.join(build_dir, "tune", "cache"))
    runner = Runner(root=root, space=space, board=board, tune_dir=folder, cache_dir=cache_dir)
    if dry_run:
        return plan(tune_settings, space, board, folder, out)
    study = open_study(tune_settings, space, board, folder)
    tune_settings = prepare(study, space, tune_settings, out)
    shown_storage = storage._shown_url(tune_settings["storage"]) or report.shown(os.path.join(folder, "study.journal"))
    already = len(Study(study, space, runner, board, tune_settings)._finished())
    out(f"tune: {board['name']} ({board.get('title', '')}), study {study.study_name} in {shown_storage}; "
        f"{already} of {tune_settings['trials']} trial(s) done; space: {space.describe()} ({space.source})")
    if tune_settings["latency_ms"]:
        out(f"tune: latency budget {tune_settings['latency_ms']:g} ms per inference")
    worker = Study(study, space, runner, board, tune_settings, out=out)
    try:
        worker.run()
    except KeyboardInterrupt:
        _err("interrupted: the finished trials are kept in the study; `scons tune` again resumes it")
        return 130
    return finish(study, space, board, tune_settings, folder, shown_storage, out)


def plan(tune_settings, space, board, folder, out=print):
    """`scons -n tune`: what the study would do (its storage, the space, the trials done and left, the queue of
    an exhaustive space), read from the study if there is one; nothing is trained, created or written."""
    import optuna
    from optuna.trial import TrialState

    _quiet_optuna()
    journal = os.path.join(folder, "study.journal")
    name = study_name(space, board, tune_settings)
    store = storage.open_storage(tune_settings["storage"], journal, create=False)
    trials = []
    if store is not None:
        try:
            trials = optuna.load_study(study_name=name, storage=store).get_trials(deepcopy=False)
        except KeyError:        # the storage exists, this study (space, budget) not yet
            pass
    shown_storage = storage._shown_url(tune_settings["storage"]) or report.shown(journal)
    state = "" if trials else " (not created yet)"
    everything = space.candidates(limit=tune_settings["trials"])
    wanted = len(everything) if everything is not None else tune_settings["trials"]
    done = finished(trials)
    out(f"tune: {board['name']} ({board.get('title', '')}), study {name} in {shown_storage}{state}; "
        f"{len(done)} of {wanted} trial(s) done; space: {space.describe()} ({space.source})")
    if tune_settings["latency_ms"]:
        out(f"tune: latency budget {tune_settings['latency_ms']:g} ms per inference")
    running = [t for t in trials if t.state == TrialState.RUNNING]
    alive = [t for t in running if storage.owner_alive(t.user_attrs.get("owner"))]
    stale = [t.number for t in running if t not in alive]
    if stale:
        out(f"tune: trial(s) {', '.join(map(str, stale))} left running by a worker that is gone would be queued "
            "again")
    if alive:
        out(f"tune: trial(s) {', '.join(str(t.number) for t in alive)} running now (on "
            f"{', '.join(sorted({str((t.user_attrs.get('owner') or {}).get('host')) for t in alive}))})")
    left = max(0, wanted - len(done) - len(alive))
    how = (f"each probed untrained first (flash, RAM, latency), trained only if it fits; up to "
           f"{tune_settings['jobs']} at a time (TUNE_JOBS=)")
    if tune_settings["time_s"]:
        how += f", none started after {report._duration(tune_settings['time_s'])} (TUNE_TIME=)"
    if everything is not None:
        taken = [t.system_attrs.get("fixed_params", t.params) for t in done + alive]
        queue = [c for c in everything if c not in taken]
        out(f"tune: the space has {len(everything)} candidate(s), each tried once; {left} would run now, {how}:")
        for params in queue[:left]:
            out("  " + " ".join(f"{k}={v}" for k, v in params.items()))
    else:
        out(f"tune: {left} trial(s) would run now, sampled by Optuna's TPE from the space, {how}")
    out("tune: dry run (scons -n): nothing probed, trained or written; `scons tune` without -n runs it")
    return 0


def finish(study, space, board, tune_settings, folder, shown_storage, out=print):
    records = [report.record(t) for t in study.get_trials(deepcopy=False)]
    front = report.pareto_front(records)
    best = report.chosen(records)
    params = [p.name for p in space.params]
    text = report.table(records, params, front, best)
    plot = report.plot(records, os.path.join(folder, "pareto.png"), board, tune_settings["latency_ms"], front, best)
    summary = {"board": board["name"], "study": study.study_name, "storage": shown_storage,
               "space": {p.name: p.describe() for p in space.params}, "space_source": space.source,
               "base": space.base, "latency_budget_ms": tune_settings["latency_ms"],
               "trials_wanted": tune_settings["trials"], "trials": records, "front": front,
               "chosen": best["number"] if best else None, "plot": plot, "table": text}
    report.write_json(os.path.join(folder, "tune.json"), summary)
    with report.atomic_open(os.path.join(folder, "tune.txt")) as f:
        f.write(text + "\n")
    out(text)
    out(f"tune: table {report.shown(os.path.join(folder, 'tune.txt'))}, plot {report.shown(plot)}, results "
        f"{report.shown(os.path.join(folder, 'tune.json'))}")
    elsewhere = [r["number"] for r in records if r["state"] == "running"]
    if elsewhere:
        # another worker (machine) is still on them: this one's part is done, the verdict is not in yet
        out(f"tune: trial(s) {', '.join(map(str, elsewhere))} still running on other workers; the table is "
            "partial: `scons tune` again (or the last worker to finish) prints the whole study")
    if best is None and elsewhere:
        return 0
    if best is None:
        trained = [r for r in records if r["state"] == "complete"]
        if not trained:
            _err(f"no trial of the study finished for {board['name']}; see the failed trials above and their "
                 "logs")
        else:
            _err(f"no candidate fits {board['name']} (flash {board['flash_bytes']:,} B, RAM {board['ram_bytes']:,} B"
                 + (f", {tune_settings['latency_ms']:g} ms" if tune_settings["latency_ms"] else "")
                 + "): search smaller models ([tune] SIZE=, ALPHA=, DEPTH=, CHANNELS=1), raise LATENCY_MS= or pick "
                 "a bigger BOARD=")
        return 1
    out(f"tune: chosen trial {best['number']} ({' '.join(f'{k}={v}' for k, v in best['variables'].items())}): "
        f"int8 accuracy {100 * best['accuracy']:.1f}%, {best['latency_ms']:,.1f} ms, RAM {best['ram']:,} B, "
        f"flash {best['flash']:,} B; keep it with `scons tune save ENV=NAME TRIAL={best['number']}`")
    return 0


def _find_summaries(arguments, resolved):
    """tune.json files `scons tune save` may mean: BUILD_DIR='s if given, else every build/.../tune/<BOARD>/."""
    import glob

    board = arguments.get("BOARD")
    if "BUILD_DIR" in arguments:
        roots = [arguments["BUILD_DIR"]]
    else:
        top = config.VARIABLES["BUILD_DIR"][0]
        roots = [top] + sorted(os.path.dirname(p) for p in glob.glob(os.path.join(top, "*", "tune")))
    found = []
    for r in roots:
        pattern = os.path.join(r, "tune", board or "*", "tune.json")
        found += sorted(glob.glob(pattern))
    return sorted(set(found))


def save(arguments, resolved, project_conf, out=print, dry_run=False):
    from .. import profiles

    name = (arguments.get("ENV") or "").strip()
    trial_text = arguments.get("TRIAL", "").strip()
    if not name or not trial_text:
        raise ConfigError("`scons tune save` needs ENV=NAME (the profile to write) and TRIAL=n (a trial of the "
                          "table `scons tune` printed), e.g. scons tune save ENV=best TRIAL=3")
    number = settings.parse({"TRIAL": trial_text})["trial"]
    summaries = _find_summaries(arguments, resolved)
    if not summaries:
        raise ConfigError("no study found (no build/.../tune/<BOARD>/tune.json); run `scons tune BOARD=...` first, "
                          "or give the BUILD_DIR= it used")
    if len(summaries) > 1:
        raise ConfigError(f"several studies found ({', '.join(report.shown(s) for s in summaries)}); say which with "
                          "BOARD= and, for a study under another build dir, BUILD_DIR=")
    summary = report.load_json(summaries[0])
    rec = next((r for r in summary["trials"] if r["number"] == number), None)
    if rec is None:
        raise ConfigError(f"TRIAL={number}: {report.shown(summaries[0])} has no trial {number}; its trials are "
                          f"{', '.join(str(r['number']) for r in summary['trials'])}")
    if not rec["trained"]:
        usable = [str(r["number"]) for r in summary["trials"] if r["trained"]]
        raise ConfigError(f"TRIAL={number} was not trained ({report.outcome(rec)}); save a trained trial: "
                          f"{', '.join(usable) or 'none yet'}")
    values = {k: v for k, v in rec["build_variables"].items() if k not in ("BUILD_DIR",)}
    written = profiles.save(project_conf, {"ENV": name, **values}, dry_run=dry_run)
    out(written)
    if dry_run:
        return 0
    out(f"tune: `scons ENV={name}` builds trial {number}'s model (from CACHE_DIR={values.get('CACHE_DIR')} when "
        "it is there); `scons upload ENV=" + name + "` puts it on the board")
    return 0
