"""SCons tool `tinyml_state`: what keeps a build's record honest across concurrent runs, crashes and a shared cache.

- **One lock per signature database**, taken by the tool (every Tiny* builder takes it when a build file first
  declares a target) and held until the process exits, i.e. after SCons has saved `.sconsign`. Our SConstruct
  keeps the database in BUILD_DIR, so the lock is `<BUILD_DIR>/.scons.lock`; a firmware repo that loads the
  tool with SCons' default database gets `<top>/.scons.lock`. A second scons waits instead of overwriting the
  first one's signatures at exit.
- **Finished stages survive kill -9.** SCons writes `.sconsign` only at exit. As each target is built, this
  tool records its stage key (inputs, parameters, action) and the sha256 of what it wrote in
  `<database dir>/.scons-finished/`; a later run that finds no signature for a target but a matching record
  and unchanged file keeps it instead of rebuilding. The hook is SCons' own CacheDir interface
  (`CACHEDIR_CLASS`), which SCons calls exactly before building and after a target is built. SCons calls it
  under -n too: only a target a stage really built in this process (tinyml_glue.really_built) is recorded or
  pushed, and -n/-q change nothing on disk.
- **Shared cache (CACHE_DIR=).** The same class is SCons' CacheDir with three changes: an unusable or
  read-only directory is one warning and the build goes on (read-only: entries are still taken); every entry
  carries the sha256 of its content, and an entry that does not match is evicted, reported and rebuilt; the
  key leaves out where the build dir is (a CI checkout and a developer's share entries).
"""
import contextlib
import hashlib
import json
import os
import sys
import tempfile
import threading

import SCons.Action
import SCons.CacheDir
import SCons.Errors
import SCons.Node.FS
import SCons.Node.Python
import SCons.SConsign
import SCons.Util

LOCK_NAME = ".scons.lock"
RECORDS_DIR = ".scons-finished"

_held_locks = {}            # lock path -> FileLock: kept for the process's lifetime, so the lock holds until exit
_lock_mutex = threading.Lock()


def _fail(message):
    """One error line and exit 2, while the build files are read (no traceback)."""
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def _warn(message):
    sys.stderr.write(f"warning: {message}\n")
    sys.stderr.flush()


def signature_db_dir(fallback_dir):
    """The directory of the SCons signature database that records `fallback_dir`'s targets."""
    if SCons.SConsign.DB_Module is None:           # SConsignFile(None): one .sconsign per directory
        return fallback_dir
    name = SCons.SConsign.DB_Name or SCons.SConsign.current_sconsign_filename()
    if not os.path.isabs(name):
        name = os.path.join(SCons.Node.FS.get_default_fs().Top.get_abspath(), name)
    return os.path.dirname(name)


def hold_build_lock(target_dir):
    """Takes (once per process) the lock of the signature database `target_dir`'s targets are recorded in.

    Blocks while another scons holds it. Not taken for `scons -h`, which builds nothing."""
    import SCons.Script

    if SCons.Script.GetOption("help"):
        return
    directory = os.path.realpath(signature_db_dir(target_dir))
    path = os.path.join(directory, LOCK_NAME)
    with _lock_mutex:
        if path in _held_locks:
            return
        # filelock: flock(2) on Linux and macOS (as before), LockFileEx on Windows. The holder's pid is written
        # into the lock file once it is ours, for the waiting message of the next scons.
        from filelock import FileLock, Timeout

        def write_pid(fd):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, str(os.getpid()).encode())

        lock = FileLock(path, thread_local=False, on_acquired=write_pid)
        try:
            os.makedirs(directory, exist_ok=True)
            try:
                lock.acquire(blocking=False)
            except Timeout:
                holder = "?"
                with contextlib.suppress(OSError):       # Windows: a locked file may not be readable
                    with open(path) as f:
                        holder = f.read().strip() or "?"
                print(f"scons: another scons (pid {holder}) is building in {directory}; waiting for it to finish "
                      "(Ctrl-C to stop, or use another BUILD_DIR=)", flush=True)
                lock.acquire()
        except OSError as e:
            _fail(f"cannot write to the build directory {directory} ({e.strerror}): make it writable or choose "
                  "another one (BUILD_DIR=...)")
        _held_locks[path] = lock
        # temp files of records that a killed run was writing (the lock is ours: nobody else writes them now)
        import glob

        for stale in glob.glob(os.path.join(directory, RECORDS_DIR, "*.tmp")):
            with contextlib.suppress(OSError):
                os.remove(stale)
        if SCons.Script.GetOption("clean"):
            # `scons -c` means "build from scratch next time": the records must not bring the targets back.
            import shutil

            shutil.rmtree(os.path.join(directory, RECORDS_DIR), ignore_errors=True)


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _write_atomically(path, text):
    """Small state files: a temporary beside `path`, renamed over it (never half-written); umask modes."""
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


_UMASK = None


def _umask():
    global _UMASK
    if _UMASK is None:
        from codegen.fsutil import current_umask

        _UMASK = current_umask()
    return _UMASK


class StageCache(SCons.CacheDir.CacheDir):
    """SCons' CacheDir, plus the per-target records that let a finished stage survive a crash (see the module
    docstring). `path` is the shared CACHE_DIR, or None: the records work without one."""

    def __init__(self, path):
        super().__init__(None)
        self.readonly = False
        self._warned = set()
        self._warn_mutex = threading.Lock()
        if path is not None:
            self._open_shared(os.path.abspath(str(path)))

    # --- the shared directory ---------------------------------------------------------------------------------
    def _open_shared(self, path):
        try:
            if os.path.isdir(path) and not self._writable(path):
                self.readonly = True
                self.config = self._read_config(path)
            else:
                self._readconfig(path)         # SCons creates the directory and its config if needed
        except (OSError, ValueError, SCons.Errors.SConsEnvironmentError, SCons.Util.SConsLockFailure) as e:
            reason = getattr(e, "strerror", None) or str(e)
            _warn(f"CACHE_DIR={path} cannot be used ({reason}); building without the shared cache")
            return
        self.path = path
        if self.readonly:
            _warn(f"CACHE_DIR={path} is read-only for this user: results are taken from it but not pushed")

    @staticmethod
    def _writable(path):
        """Tried for real: os.access says yes to root on a read-only share and knows nothing of read-only mounts."""
        try:
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=path)
        except OSError:
            return False
        os.close(fd)
        os.remove(probe)
        return True

    @staticmethod
    def _read_config(path):
        """The config of a cache this user cannot write to: SCons' reader takes a lock file it cannot create."""
        try:
            with open(os.path.join(path, "config")) as f:
                return json.load(f)
        except FileNotFoundError:
            return {"prefix_len": SCons.CacheDir.CACHE_PREFIX_LEN}

    def is_readonly(self):
        return self.readonly or super().is_readonly()

    def _warn_once(self, key, message):
        with self._warn_mutex:
            if key in self._warned:
                return
            self._warned.add(key)
        _warn(message)

    # --- keys ---------------------------------------------------------------------------------------------
    def stage_key(self, node):
        """The node's build signature without where the build happens: its inputs' contents, the parameters
        (with the output and top directories replaced by placeholders), the action and the file's name."""
        try:
            return node.attributes.tinyml_stage_key
        except AttributeError:
            pass
        out_dir = node.dir.get_abspath()
        top = SCons.Node.FS.get_default_fs().Top.get_abspath()
        places = sorted({(out_dir, "<out>"), (node.dir.get_internal_path(), "<out>"), (top, "<top>")},
                        key=lambda p: -len(p[0]))
        sigs = []
        for child in node.children():
            if isinstance(child, SCons.Node.Python.Value):
                text = child.get_text_contents()
                for place, name in places:
                    if place and place != ".":
                        text = text.replace(place, name)
                sigs.append(SCons.Util.hash_signature(text))
            else:
                sigs.append(child.get_cachedir_csig())
        sigs.append(node.get_contents_sig())
        sigs.append(node.name)
        key = SCons.Util.hash_collect(sigs)
        node.attributes.tinyml_stage_key = key
        return key

    def cachepath(self, node):
        if not self.is_enabled():
            return None, None
        sig = self.stage_key(node)
        subdir = os.path.join(self.path, sig[:self.config.get("prefix_len", SCons.CacheDir.CACHE_PREFIX_LEN)].upper())
        return subdir, os.path.join(subdir, sig)

    # --- records of finished targets ----------------------------------------------------------------------
    @staticmethod
    def _record_base(node):
        path = node.get_abspath()
        name = hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return os.path.join(signature_db_dir(node.dir.get_abspath()), RECORDS_DIR, name)

    def _record(self, node):
        """Keeps a hard link to what the stage wrote (no copy, no disk space; SCons deletes a target before it
        rebuilds it, so the record must hold the content) and the key it was built for."""
        base, target = self._record_base(node), node.get_abspath()
        try:
            os.makedirs(os.path.dirname(base), exist_ok=True)
            tmp = f"{base}.{os.getpid()}.{threading.get_ident()}.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            try:
                os.link(target, tmp)
            except OSError:                     # another file system, or no hard links: a copy then
                import shutil

                shutil.copy2(target, tmp)
            os.replace(tmp, base + ".data")
            # rename() of two links to the same file does nothing (POSIX): an unchanged target's link stays
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            _write_atomically(base + ".json", json.dumps(
                {"target": target, "key": self.stage_key(node), "sha256": _sha256(base + ".data")}))
        except OSError as e:
            # a partial copy (disk full, file size limit) must not stay behind
            with contextlib.suppress(OSError, UnboundLocalError):
                os.remove(tmp)
            self._warn_once("record", f"cannot record finished targets in {os.path.dirname(base)} "
                                      f"({e.strerror}): a crash of this build would redo them")

    def _restore_finished(self, node):
        """True when a run that stopped before saving its signatures (kill -9, power loss, a CI timeout) had
        built this target from these very inputs; its content is put back in place."""
        base, target = self._record_base(node), node.get_abspath()
        try:
            with open(base + ".json") as f:
                record = json.load(f)
            if record.get("key") != self.stage_key(node) or record.get("sha256") != _sha256(base + ".data"):
                return False
            if os.path.isfile(target) and _sha256(target) == record["sha256"]:
                return True
            os.makedirs(os.path.dirname(target), exist_ok=True)
            tmp = f"{target}.{os.getpid()}.restore.tmp"
            with contextlib.suppress(FileNotFoundError):
                os.remove(tmp)
            os.link(base + ".data", tmp)
            os.replace(tmp, target)
            return True
        except (OSError, ValueError):
            return False

    def would_retrieve(self, node):
        """Whether `retrieve` would supply this out-of-date target instead of its stage (a finished-target record
        or a shared-cache entry): the stage counter leaves it out. Changes nothing on disk. Only asked while the
        node's inputs are final (the key is memoized on the node)."""
        if node.always_build or not SCons.CacheDir.cache_enabled:
            return False
        base = self._record_base(node)
        try:
            with open(base + ".json") as f:
                record = json.load(f)
            if record.get("key") == self.stage_key(node) and record.get("sha256") == _sha256(base + ".data"):
                return True
        except (OSError, ValueError):
            pass
        if not self.is_enabled():
            return False
        _, entry = self.cachepath(node)
        return os.path.isfile(entry)

    # --- SCons' hooks -------------------------------------------------------------------------------------
    def is_enabled(self):
        return SCons.CacheDir.cache_enabled and self.path is not None

    def retrieve(self, node):
        if node.always_build or not SCons.CacheDir.cache_enabled:      # --cache-disable: build everything
            return False
        if not SCons.Action.execute_actions:
            # -n and -q change nothing on disk: say what a real run would do, as SCons' own CacheDir does.
            if self.would_retrieve(node):
                print(f"scons: would keep `{node}' (an earlier run built it from these same inputs)")
                return True
            return False
        if self._restore_finished(node):
            print(f"scons: kept `{node}' (an earlier run built it from these same inputs but stopped before it "
                  "could note that; not rebuilt)")
            return True
        if not self.is_enabled():
            return False
        _, entry = self.cachepath(node)
        if not os.path.isfile(entry):
            return False
        problem = self._entry_problem(entry)
        if problem:
            self._evict(node, entry, problem)
            return False
        try:
            retrieved = super().retrieve(node)
        except OSError as e:
            _warn(f"CACHE_DIR entry for {node} could not be copied ({e.strerror}); building it here")
            return False
        if retrieved:
            self._record(node)
        return retrieved

    def push(self, node):
        # Only what this process really built is recorded or shared: SCons calls push after -n "builds" too
        # (and for a stage that did not run, the file on disk is the old one, not what these inputs make).
        from tinyml_glue import really_built

        if not really_built(node):
            return None
        self._record(node)
        if not self.is_enabled() or self.is_readonly():
            return None
        subdir, entry = self.cachepath(node)
        if os.path.exists(entry):
            return None
        try:
            # The checksum goes first: a reader that sees the entry also sees what it must hash to.
            _write_atomically(entry + ".sha256", _sha256(node.get_abspath()) + "\n")
        except OSError as e:
            self._warn_once("push", f"cannot push to CACHE_DIR={self.path} ({e.strerror}); the build goes on "
                                    "without filling the shared cache")
            return None
        return super().push(node)

    @staticmethod
    def _entry_problem(entry):
        try:
            with open(entry + ".sha256") as f:
                want = f.read().strip()
        except FileNotFoundError:
            return "it has no checksum (pushed by an older tinyml-scons or plain SCons)"
        except OSError as e:
            return f"its checksum cannot be read ({e.strerror})"
        try:
            got = _sha256(entry)
        except OSError as e:
            return f"it cannot be read ({e.strerror})"
        return None if got == want else "its content does not match its checksum (truncated or damaged)"

    def _evict(self, node, entry, problem):
        try:
            for path in (entry, entry + ".sha256"):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
            done = "removed it"
        except OSError as e:
            done = f"could not remove it ({e.strerror}; ask the cache's owner to delete {entry})"
        _warn(f"CACHE_DIR entry {entry} for {node} is not trusted: {problem}; {done} and rebuilding {node}")


def generate(env):
    from codegen.quiet import install_filters

    # From now on Python-level output survives a stage's fd-level silencing, and odd file names print.
    install_filters()
    from tinyml_glue import stop_stages_on_signals

    stop_stages_on_signals()
    env["CACHEDIR_CLASS"] = StageCache
    if getattr(env, "_CacheDir_path", None) is None:
        # No CACHE_DIR: the class still runs SCons' cache hooks, which keep the records of finished targets.
        env.CacheDir(None, StageCache)


def exists(env):
    return True
