"""Every external program the stages run (gcc, arm-none-eabi-gcc, qemu-system-arm, simavr, arduino-builder,
arduino-cli, pip, ssh, rsync, ...) starts here, so that `VERBOSE=1` can show each command line before it runs.

The echo is the command as a shell would need it (`shlex.join`), so it can be copied and rerun by hand. It goes
to this thread's stdout: a stage running inside `codegen.quiet.quiet()` stays quiet, the others print even under
`scons -j2`. Verbosity is a process-wide switch, not a stage parameter: it must not change any output file or
any signature (SConstruct sets it from VERBOSE=, a firmware repo calls `set_verbose(True)`).
"""
import os
import shlex
import subprocess
import sys

from . import interrupt
from .errors import PipelineError

_verbose = False


def set_verbose(on):
    global _verbose
    _verbose = bool(on)


def command_line(cmd, cwd=None):
    """`cmd` as one shell line; with `cwd`, prefixed by the `cd` it needs."""
    line = cmd if isinstance(cmd, str) else shlex.join(os.fspath(a) for a in cmd)
    return f"cd {shlex.quote(os.fspath(cwd))} && {line}" if cwd else line


def echo(cmd, cwd=None):
    if _verbose:
        sys.stdout.write(command_line(cmd, cwd) + "\n")
        sys.stdout.flush()


def _argv(cmd, kwargs):
    """A command is a list of arguments, never a string for a shell (issue 19: a user string never becomes
    code); a remote shell's command line is built with codegen.escape.shell_join."""
    if isinstance(cmd, (str, bytes)) or kwargs.get("shell"):
        raise TypeError(f"codegen.proc runs an argument list, not a shell string: {cmd!r}")


# Every step has a bounded time: a call without its own `timeout` gets this many seconds (a compiler fed a
# hostile file, a tool waiting on a terminal, a hung emulator would otherwise hold the build forever).
STEP_TIMEOUT_VARIABLE = "TINYML_STEP_TIMEOUT"
DEFAULT_STEP_TIMEOUT_S = 1800


def step_timeout():
    """Seconds a step without its own limit may take: $TINYML_STEP_TIMEOUT, else 30 minutes (an environment
    variable, not a build variable: it changes no output, so it is part of no signature)."""
    raw = os.environ.get(STEP_TIMEOUT_VARIABLE, "").strip()
    if not raw:
        return DEFAULT_STEP_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        value = 0
    if not 0 < value < float("inf"):
        raise PipelineError(f"{STEP_TIMEOUT_VARIABLE}={raw!r} is not a positive number of seconds")
    return value


def run(cmd, *, input=None, timeout=None, check=False, capture_output=False, **kwargs):
    """subprocess.run, echoed under VERBOSE=1, and registered with codegen.interrupt while it runs: with
    `scons -j2` a Ctrl-C or SIGTERM (handled in the main thread) kills it instead of waiting for it to end.
    Same arguments, result and exceptions as subprocess.run, but `cmd` must be a list (no shell), and no step
    runs unbounded: without a `timeout` the limit is step_timeout(), and running over it is a PipelineError naming
    the program and TINYML_STEP_TIMEOUT (a caller that passes its own `timeout` gets subprocess.TimeoutExpired as
    before)."""
    _argv(cmd, kwargs)
    if timeout is None:
        limit = step_timeout()
        try:
            return run(cmd, input=input, timeout=limit, check=check, capture_output=capture_output, **kwargs)
        except subprocess.TimeoutExpired:
            program = os.path.basename(os.fspath(cmd[0]))
            raise PipelineError(f"{program} did not finish within {limit:g} s and was stopped "
                                f"({command_line(cmd)[:300]}); if it is only slow, raise the limit with "
                                f"{STEP_TIMEOUT_VARIABLE}=<seconds> (an environment variable)") from None
    echo(cmd, kwargs.get("cwd"))
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    with interrupt.spawning():
        child = subprocess.Popen(cmd, **kwargs)
    with child:
        try:
            with interrupt.child(child):
                out, err = child.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            child.kill()
            out, err = child.communicate()
            raise subprocess.TimeoutExpired(child.args, e.timeout, output=out, stderr=err) from None
        except BaseException:
            child.kill()
            raise
        returncode = child.poll()
    if check and returncode:
        raise subprocess.CalledProcessError(returncode, child.args, output=out, stderr=err)
    return subprocess.CompletedProcess(child.args, returncode, out, err)


def popen(cmd, **kwargs):
    """subprocess.Popen, echoed under VERBOSE=1; `cmd` must be a list (no shell)."""
    _argv(cmd, kwargs)
    echo(cmd, kwargs.get("cwd"))
    with interrupt.spawning():
        return subprocess.Popen(cmd, **kwargs)


# The exception types callers catch, so that they need not import subprocess beside this module.
TimeoutExpired = subprocess.TimeoutExpired
CalledProcessError = subprocess.CalledProcessError
PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
