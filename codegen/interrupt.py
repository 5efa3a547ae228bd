"""Stopping a build promptly on Ctrl-C or SIGTERM, whichever thread a stage runs in.

Python runs signal handlers in the main thread only. With `scons -j1` a stage runs there and the SCons glue
raises KeyboardInterrupt inside it. With `-j2` and up, stages run in worker threads that no handler reaches:
SCons merely stops scheduling, and a running stage (training for minutes, a hung arduino-cli, QEMU) would go on.
So the main thread's handler calls `request_stop()`: every registered child process group is killed at once,
and long in-process loops (Keras' batches) call `raise_if_stopped()` between steps.

Portable: on Linux and macOS a child started in its own session is killed with its whole process group, as
before; elsewhere (Windows: no process groups, no SIGHUP, no per-thread signal masks) psutil kills the child and
its descendants, and the signal-mask calls do nothing.
"""
import contextlib
import os
import signal
import threading

_stop = threading.Event()
_children = {}          # pid -> True if it leads its own process group
_children_lock = threading.Lock()


def request_stop():
    """Called from a signal handler: kills the registered children and marks the build as stopping."""
    _stop.set()
    with _children_lock:
        children = list(_children.items())
    for pid, own_group in children:
        kill_tree(pid, own_group)


def kill_tree(pid, own_group=False):
    """Kills a child at once: its whole process group if it leads one (POSIX, start_new_session=True), else
    the child and its descendants through psutil (Windows, or a child in our own group)."""
    if own_group and hasattr(os, "killpg"):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        return
    import psutil

    try:
        parent = psutil.Process(pid)
        processes = [*parent.children(recursive=True), parent] if own_group else [parent]
    except psutil.Error:
        return
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


# SIGHUP does not exist on Windows; there a stop comes as SIGINT (Ctrl-C) or SIGBREAK/SIGTERM.
STOP_SIGNALS = {getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)}
_HAS_SIGMASK = hasattr(signal, "pthread_sigmask")


def block_stop_signals():
    """In a stage's worker thread: a signal sent to the process must wake the main thread, whose handler calls
    request_stop(); taken by a worker (or a TensorFlow thread it starts, which inherits its mask), it left the
    main thread asleep until the stage ended."""
    if _HAS_SIGMASK:
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


@contextlib.contextmanager
def spawning():
    """Around starting a child process: a child inherits its thread's signal mask, and one with SIGINT/SIGTERM
    blocked would ignore Ctrl-C at the terminal and a plain `kill`. Unblocked for the moment of the fork."""
    if not _HAS_SIGMASK:
        yield
        return
    blocked = signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS) & STOP_SIGNALS
    try:
        yield
    finally:
        if blocked:
            signal.pthread_sigmask(signal.SIG_BLOCK, blocked)


def raise_if_stopped():
    if _stop.is_set():
        raise KeyboardInterrupt


@contextlib.contextmanager
def child(proc, own_group=False):
    """Registers a started subprocess.Popen for `request_stop()`; a stop that came just before it started
    kills it too. `own_group`: it was started with start_new_session=True, so its whole group goes."""
    with _children_lock:
        _children[proc.pid] = own_group
    try:
        if _stop.is_set():
            request_stop()
        yield proc
    finally:
        with _children_lock:
            _children.pop(proc.pid, None)
    if _stop.is_set():
        raise KeyboardInterrupt


def keras_callback():
    """A Keras callback that ends training at the next batch once a stop was requested."""
    import keras

    class StopOnInterrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            raise_if_stopped()

        def on_test_batch_end(self, batch, logs=None):
            raise_if_stopped()

    return StopOnInterrupt()
