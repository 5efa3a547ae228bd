"""Progress for the long in-process loops (drawing the synthetic images, reading DATA= folders, training).

On a terminal: tqdm's bar (rate, ETA) and Keras' own progress bar. Elsewhere (CI logs, the tests' pipes) a
bar's carriage returns are noise: one line says what is happening instead, and Keras prints one line per epoch.
"""
import contextlib
import sys


def on_terminal():
    """Whether the process's real stdout is a terminal (not SCons' or codegen.quiet's wrapper of it)."""
    stream = sys.__stdout__
    try:
        return bool(stream and stream.isatty())
    except (AttributeError, ValueError):
        return False


def keras_verbosity():
    """model.fit's `verbose`: 1 (the progress bar) on a terminal, 2 (one line per epoch) otherwise."""
    return 1 if on_terminal() else 2


@contextlib.contextmanager
def counting(total, what, unit="img", announce=True):
    """Yields `advance()`, to call once per item done: a tqdm bar on a terminal; elsewhere (with `announce`) one
    line `  <what> (<total> <unit>) ...` before the work."""
    if not on_terminal():
        if announce:
            print(f"  {what} ({total:,} {unit}) ...", flush=True)
        yield lambda n=1: None
        return
    from tqdm import tqdm

    with tqdm(total=total, desc=f"  {what}", unit=unit, file=sys.stdout, leave=False, dynamic_ncols=True) as shown:
        yield shown.update
