"""Silencing a noisy library (TensorFlow's C++ start-up banner, the converter's SavedModel dump) without hiding
anybody else's output, also when `scons -j2` runs other stages in other threads of the same process.

Two levels:
- Python writes (print, warnings, SCons' own messages and error lines) go through `sys.stdout`/`sys.stderr`,
  which `quiet()` replaces once by per-thread filters: only the thread inside `quiet()` is muted, and every
  other thread writes to a private duplicate of the terminal's descriptor, which no redirect below touches.
- C-level writes (TensorFlow's C++ logging, printf in the converter) can only be muted by pointing file
  descriptors 1 and 2 at /dev/null, which is process-wide. That is done only while no other stage runs:
  stages announce themselves with `stage_running()`, and a stage that starts while one is muted waits until
  the muted section ends (its subprocesses inherit descriptors 1 and 2, so their errors would vanish).
  With another stage running, the C-level lines are let through: noise, but nothing is hidden.
"""
import contextlib
import os
import sys
import threading

_local = threading.local()
_state = threading.Condition()
_running_stages = 0
_fds_redirected = False


class _ThreadFilteredStream:
    """A stand-in for sys.stdout/sys.stderr: drops the writes of threads inside quiet(), passes the others."""

    def __init__(self, stream):
        self._stream = stream
        try:
            fd = stream.fileno()
        except (AttributeError, OSError, ValueError):
            self._out = stream              # not backed by a descriptor (an in-memory capture): nothing to dodge
        else:
            self._out = os.fdopen(os.dup(fd), "w", buffering=1, closefd=True,
                                  encoding=getattr(stream, "encoding", None) or "utf-8",
                                  errors="backslashreplace")

    def write(self, text):
        if getattr(_local, "muted", 0):
            return len(text)
        try:
            written = self._out.write(text)
            self._out.flush()
        except BrokenPipeError:     # `scons -h | head`: the reader left; what is left to say goes nowhere
            return len(text)
        return written

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        if not getattr(_local, "muted", 0):
            with contextlib.suppress(BrokenPipeError):
                self._out.flush()

    def fileno(self):
        return self._out.fileno()

    def isatty(self):
        return self._out.isatty()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def install_filters():
    """Puts the per-thread filters in place of sys.stdout and sys.stderr (once). Their encoding errors are
    backslash escapes: a file name that is not UTF-8 is printed, not a UnicodeEncodeError."""
    with _state:
        if not isinstance(sys.stdout, _ThreadFilteredStream):
            sys.stdout = _ThreadFilteredStream(sys.stdout)
        if not isinstance(sys.stderr, _ThreadFilteredStream):
            sys.stderr = _ThreadFilteredStream(sys.stderr)


@contextlib.contextmanager
def stage_running():
    """Marks one stage of a build as running in this thread (the SCons glue wraps every stage action in it)."""
    global _running_stages
    with _state:
        while _fds_redirected:
            _state.wait()
        _running_stages += 1
    try:
        yield
    finally:
        with _state:
            _running_stages -= 1
            _state.notify_all()


@contextlib.contextmanager
def quiet():
    """Mutes this thread's output, and the process's C-level output while no other stage runs. Exceptions
    still propagate with their messages."""
    global _fds_redirected
    install_filters()
    _local.muted = getattr(_local, "muted", 0) + 1
    saved = None
    with _state:
        if _running_stages <= 1 and not _fds_redirected:
            _fds_redirected = True
            saved = True
    if saved:
        for stream in (sys.__stdout__, sys.__stderr__):
            with contextlib.suppress(Exception):
                stream.flush()
        saved = [os.dup(1), os.dup(2)]
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        os.close(devnull)
    try:
        yield
    finally:
        _local.muted -= 1
        if saved:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            with _state:
                _fds_redirected = False
                _state.notify_all()
