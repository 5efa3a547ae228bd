"""Atomic output files: a target either has its complete new content or is absent.

Every stage writes through these helpers, so an interrupted or failed step (Ctrl-C, disk full, a crash) never
leaves a file that a later build would trust as up to date.
"""
import contextlib
import os
import tempfile
import threading

_umask_cache = []
_umask_mutex = threading.Lock()


def current_umask():
    """The process's umask, read without changing it: os.umask() can only be read by setting it, and between
    two calls another thread (scons -j2) would create files with the wrong mode. Linux reports it in
    /proc/self/status; elsewhere it is read once, under a lock, the first time it is asked for."""
    with _umask_mutex:
        if not _umask_cache:
            try:
                with open("/proc/self/status") as f:
                    line = next(l for l in f if l.startswith("Umask:"))
                _umask_cache.append(int(line.split()[1], 8))
            except (OSError, StopIteration, ValueError):
                mask = os.umask(0o022)
                os.umask(mask)
                _umask_cache.append(mask)
        return _umask_cache[0]


def file_mode():
    """The mode an ordinary new file gets (0644 with the usual umask 022; 0664 with a team's 002)."""
    return 0o666 & ~current_umask()


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path beside `path`; on success it replaces `path`, on error it is removed.

    `suffix` keeps the extension for writers that dispatch on it (Keras' `.keras`).
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp" + suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        # mkstemp makes the file 0600: a teammate reading it (or its copy in a shared CACHE_DIR) would get
        # "Permission denied". Give it the mode any new file of this user gets.
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    with atomic_path(path) as tmp:
        with open(tmp, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_if_changed(path, data):
    """Writes `data` (str or bytes) atomically unless the file already holds exactly that.

    Keeping an unchanged file's mtime matters for the generated sketch: arduino-cli's build cache decides on
    timestamps, so rewriting every file would recompile the whole model after a one-image edit.
    Returns True when the file was written.
    """
    raw = data.encode() if isinstance(data, str) else data
    try:
        with open(path, "rb") as f:
            if f.read() == raw:
                return False
    except FileNotFoundError:
        pass
    with atomic_open(path, "wb") as f:
        f.write(raw)
    return True


def remove_if_only(root, prefixes):
    """Removes `root` when, after its empty folders are gone, it holds only entries whose names start with one of
    `prefixes` (a build's own bookkeeping: signature database, lock); returns whether it went. What `scons -c`
    calls last, so that the folder a build made is gone too, not left holding its database."""
    import shutil

    remove_empty_dirs(root)
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return True
    if any(not n.startswith(tuple(prefixes)) for n in names):
        return False
    for name in names:
        path = os.path.join(root, name)
        try:
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        except OSError:
            return False
    try:
        os.rmdir(root)
    except OSError:
        return False
    return True


def remove_empty_dirs(root):
    """Removes every empty folder below `root` (bottom-up; `root` itself stays): what `scons -c` leaves after
    deleting the files, since SCons removes files, not the folders it made for them."""
    removed = []
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        if dirpath != root and not os.listdir(dirpath) and not os.path.islink(dirpath):
            try:
                os.rmdir(dirpath)
                removed.append(dirpath)
            except OSError:
                pass        # raced by another writer, or not ours to remove: leave it
    return removed
