"""Where a study lives, and the recovery of trials a killed worker left RUNNING.

The default is Optuna's JournalStorage on a file under the build dir (`<BUILD_DIR>/tune/<BOARD>/study.journal`):
an append-only log of operations, each written with one write() under a file lock, replayed on open. A worker
killed with kill -9 loses at most the operation it was writing (a torn last record is skipped on replay), never a
finished trial, and several processes on one machine may share the file. SQLite would also work, but its
one-writer lock times out under parallel workers and a killed writer can leave a hot journal to roll back; the
journal file needs no server and no schema. TUNE_STORAGE=postgresql://... (Optuna's RDBStorage) shares one study
between machines (an sqlite:/// URL is taken too, for one machine).

Which candidate runs next is decided under the study's claim lock (`claim_lock`), held by one worker at a time
whether the workers are threads, processes or machines: queueing a space's candidates (Optuna's `skip_if_exists`
reads, then writes: two workers starting at the same instant would both queue every candidate and then run the
same ones), counting the trials and asking for the next. On PostgreSQL it is an advisory lock of the study's
database (released by the server when the holder's transaction or connection ends, so a killed worker never
leaves it held); on a journal or SQLite file an flock beside it (released by the kernel when the holder dies).

A trial records its owner (host, pid and the pid's start time): on open, a RUNNING trial whose owner process
on this host is gone is marked FAIL and its parameters are queued again, so a resumed study redoes it first.
Trials of other hosts are covered by RDBStorage's heartbeat (a worker that stops beating for GRACE_S seconds).
"""
import contextlib
import os
import socket

from ..errors import ConfigError, PipelineError

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


def open_storage(url, journal_path, create=True):
    """The Optuna storage for TUNE_STORAGE=`url` (empty: the journal file `journal_path`), or ConfigError with
    one line saying what to change. create=False (`scons -n tune`) writes nothing: no file, folder or table is
    made, and None means there is no study storage yet."""
    import optuna

    if not url and not create:
        if not os.path.isfile(journal_path):
            return None
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

        return optuna.storages.JournalStorage(JournalFileBackend(journal_path,
                                                                 lock_obj=JournalFileOpenLock(journal_path)))
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
    if scheme.startswith("mysql"):
        raise ConfigError(f"TUNE_STORAGE={_shown_url(url)}: MySQL is not supported (workers claim candidates "
                          "under a PostgreSQL advisory lock); use postgresql://user:password@host:5432/db or "
                          "leave it empty for the study file under the build dir")
    if not scheme.startswith(("postgresql", "sqlite")):
        raise ConfigError(f"TUNE_STORAGE={_shown_url(url)!r} is not a database URL; use "
                          "postgresql://user:password@host:5432/db (shared between machines) or leave it empty for "
                          "the study file under the build dir")
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if not create and scheme.startswith("sqlite"):
        database = url.split(":///", 1)[1] if ":///" in url else ""
        if not database or not os.path.isfile(database):
            return None     # connecting would create the file
    try:
        if not create:      # RDBStorage writes its version row even with skip_table_creation: look first
            import sqlalchemy

            engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            try:
                if not sqlalchemy.inspect(engine).has_table("studies"):
                    return None
            finally:
                engine.dispose()
        with _schema_lock(url, scheme):
            store = optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                                               heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(3),
                                               engine_kwargs={"pool_pre_ping": True} if scheme != "sqlite" else None,
                                               skip_table_creation=not create, skip_compatibility_check=not create)
        return store
    except ImportError as e:
        raise ConfigError(f"TUNE_STORAGE={_shown_url(url)}: the database driver is not installed ({e}); "
                          "pip install 'psycopg[binary]' (the tune-postgres extra)") from None
    except Exception as e:      # SQLAlchemy's OperationalError and friends: unreachable, refused, bad login
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()
        reason = reason[0] if reason else type(e).__name__
        raise ConfigError(f"TUNE_STORAGE={_shown_url(url)}: cannot reach the study storage ({reason}); start the "
                          "database server or fix the host, port, user and password in the URL") from None


CLAIM_TIMEOUT_S = 120


@contextlib.contextmanager
def _schema_lock(url, scheme):
    """PostgreSQL: held while RDBStorage creates its tables. Workers starting at the same instant on a fresh
    database would otherwise create them at once, and all but one fail (a duplicate key in pg_type)."""
    if not scheme.startswith("postgresql"):
        yield
        return
    import sqlalchemy

    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as conn, conn.begin():
            conn.execute(sqlalchemy.text(f"SET LOCAL lock_timeout = '{CLAIM_TIMEOUT_S * 1000}ms'"))
            conn.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _claim_key("schema")})
            yield
    finally:
        engine.dispose()


def _claim_key(name):
    """A study name as a signed 64-bit key for pg_advisory_xact_lock (one lock per study, not per database)."""
    import hashlib

    return int.from_bytes(hashlib.sha1(f"scons-tune:{name}".encode()).digest()[:8], "big", signed=True)


def _lock_file_of(store):
    """The file a study stored in a file is kept in (a journal or an SQLite database), else None."""
    from optuna.storages import JournalStorage, RDBStorage

    if isinstance(store, JournalStorage):
        return getattr(store._backend, "_file_path", None)      # JournalFileBackend's file (not Redis)
    if isinstance(store, RDBStorage) and store.engine.dialect.name == "sqlite":
        return store.engine.url.database
    return None


@contextlib.contextmanager
def claim_lock(study, timeout_s=CLAIM_TIMEOUT_S):
    """Held while a worker queues candidates, counts trials and asks for the next one: one worker of the study
    at a time (threads of one process serialize on their own lock first). A holder that dies releases it."""
    from optuna.storages import RDBStorage

    store = study._storage
    if isinstance(getattr(store, "_backend", None), RDBStorage):
        store = store._backend          # Optuna wraps an RDBStorage in its _CachedStorage
    path = _lock_file_of(store)
    if path:
        import filelock

        lock = filelock.FileLock(path + ".claim.lock")
        try:
            lock.acquire(timeout=timeout_s)
        except filelock.Timeout:
            raise PipelineError(f"another worker of the study has held {path}.claim.lock for over {timeout_s} s; "
                                "if no `scons tune` runs on this study, remove that file") from None
        try:
            yield
        finally:
            lock.release()
        return
    if isinstance(store, RDBStorage):
        if store.engine.dialect.name != "postgresql":
            raise ConfigError(f"TUNE_STORAGE: a {store.engine.dialect.name} database cannot share a study here "
                              "(no lock to claim candidates with); use postgresql://... or the study file")
        from sqlalchemy import exc, text

        # A transaction-level advisory lock: released when this transaction ends, however it ends (the close
        # below rolls it back; a dropped connection ends it on the server), so no pooled connection keeps it.
        conn = store.engine.connect()
        try:
            conn.begin()
            try:
                conn.execute(text(f"SET LOCAL lock_timeout = '{int(timeout_s * 1000)}ms'"))
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _claim_key(study.study_name)})
            except exc.DBAPIError as e:
                reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
                raise PipelineError(f"cannot take the study's lock in its database ({reason}); check that the "
                                    "server is up and no stuck `scons tune` holds it, then run `scons tune` "
                                    "again") from None
            yield
        finally:
            conn.close()
        return
    yield       # in memory (tests): one process, whose threads the caller serializes


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

