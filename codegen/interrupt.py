"""Stopping a build promptly on Ctrl-C or SIGTERM, whichever thread a stage runs in.

Python runs signal handlers in the main thread only. With `scons -j1` a stage runs there and the SCons glue
raises KeyboardInterrupt inside it. With `-j2` and up, stages run in worker threads that no handler reaches:
SCons merely stops scheduling, and a running stage (training for minutes, a hung arduino-cli, QEMU) would go on.
So the main thread's handler calls `request_stop()`: every registered child process group is killed at once,
and long in-process loops (Keras' batches) call `raise_if_stopped()` between steps.
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
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if own_group:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)


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
