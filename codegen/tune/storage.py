"""Where a study lives, and the recovery of trials a killed worker left RUNNING.

The default is Optuna's JournalStorage on a file under the build dir (`<BUILD_DIR>/tune/<BOARD>/study.journal`):
an append-only log of operations, each written with one write() under a file lock, replayed on open. A worker
killed with kill -9 loses at most the operation it was writing (a torn last record is skipped on replay), never a
finished trial, and several processes on one machine may share the file. SQLite would also work, but its
one-writer lock times out under parallel workers and a killed writer can leave a hot journal to roll back; the
journal file needs no server and no schema. TUNE_STORAGE=postgresql://... (or any SQLAlchemy URL Optuna's
RDBStorage takes) shares one study between machines.

A trial records its owner (host, pid and the pid's start time): on open, a RUNNING trial whose owner process
on this host is gone is marked FAIL and its parameters are queued again, so a resumed study redoes it first.
Trials of other hosts are covered by RDBStorage's heartbeat (a worker that stops beating for GRACE_S seconds).
"""
import contextlib
import os
import socket

from ..errors import ConfigError

HEARTBEAT_S = 20
GRACE_S = 90


def _shown_url(url):
    """The URL without its password, for messages."""
    if "://" in url and "@" in url.split("://", 1)[1]:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}"
    return url


def owner():
    """This process as a trial's owner: host, pid and the pid's start time (a reused pid is another process)."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "start": _start_time(os.getpid())}


def _start_time(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def owner_alive(who):
    """Whether the owner process of a trial is still running. Unknown (another host): True."""
    if not who or who.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(who["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError, TypeError):
        return True
    return who.get("start") is None or _start_time(int(who["pid"])) == who.get("start")


def open_storage(url, journal_path):
    """The Optuna storage for TUNE_STORAGE=`url` (empty: the journal file `journal_path`), or ConfigError with
    one line saying what to change."""
    import optuna

    if not url:
        folder = os.path.dirname(os.path.abspath(journal_path))
        try:
            os.makedirs(folder, exist_ok=True)
            with open(journal_path, "ab"):
                pass
        except OSError as e:
            raise ConfigError(f"cannot write the study file {journal_path} ({e.strerror}); choose another "
                              "BUILD_DIR= or TUNE_STORAGE=") from None
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(JournalFileBackend(journal_path,
                                                                 lock_obj=JournalFileOpenLock(journal_path)))
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if not scheme.startswith(("postgresql", "mysql", "sqlite")):
        raise ConfigError(f"TUNE_STORAGE={_shown_url(url)!r} is not a database URL; use "
                          "postgresql://user:password@host:5432/db (shared between machines) or leave it empty for "
                          "the study file under the build dir")
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    try:
        return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                          heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(3),
                                          engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else None)
    except ImportError as e:
        raise ConfigError(f"TUNE_STORAGE={_shown_url(url)}: the database driver is not installed ({e}); "
                          "pip install 'psycopg[binary]' (the tune-postgres extra)") from None
    except Exception as e:      # SQLAlchemy's OperationalError and friends: unreachable, refused, bad login
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()
        reason = reason[0] if reason else type(e).__name__
        raise ConfigError(f"TUNE_STORAGE={_shown_url(url)}: cannot reach the study storage ({reason}); start the "
                          "database server or fix the host, port, user and password in the URL") from None


@contextlib.contextmanager
def heartbeat(study, trial):
    """While a trial runs, its heartbeat in an RDB storage (every HEARTBEAT_S): a worker on another machine
    that stops beating has its trial failed and queued again by the next worker that opens the study. Optuna
    beats only inside study.optimize; these trials are asked and told by hand, so this does it (no-op on a
    journal file, whose trials this host checks by pid)."""
    from optuna.storages._heartbeat import get_heartbeat_thread

    thread = get_heartbeat_thread(trial._trial_id, study._storage)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def recover_stale(study, log):
    """Marks FAIL the RUNNING trials whose owner process is gone and queues their parameters again (once: the
    worker whose FAIL lands first re-queues). Returns the numbers of the trials recovered."""
    from optuna.storages._heartbeat import fail_stale_trials, is_heartbeat_enabled
    from optuna.trial import TrialState

    recovered = []
    if is_heartbeat_enabled(study._storage):
        fail_stale_trials(study)        # other hosts' trials, by heartbeat (re-queued by the storage's callback)
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if owner_alive(trial.user_attrs.get("owner")):
            continue
        try:
            study.tell(trial.number, state=TrialState.FAIL)
        except Exception:       # another worker finished or failed it first
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number}, skip_if_exists=False)
        recovered.append(trial.number)
    if recovered:
        log(f"tune: trial(s) {', '.join(map(str, recovered))} were left running by a worker that is gone "
            f"(killed?); marked failed and queued again")
    return recovered

