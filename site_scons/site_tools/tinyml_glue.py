"""Shared glue for the tinyml site tools: stage actions with parameters carried as Value nodes.

A stage's last source is a Value holding its parameters as canonical JSON: changing one parameter changes that
node's signature and rebuilds exactly the targets that depend on it.
"""
import contextlib
import errno
import json
import os
import signal
import sys
import threading

import SCons.Action
import SCons.Node.Python

from codegen.errors import PipelineError


def params_node(env, **params):
    return env.Value(json.dumps(params, sort_keys=True, default=_json_default))


def _json_default(value):
    """A Board given whole (a template context's board) is its boards.json entry; a stage that uses only some of
    its fields passes boards.stage_signature(board, fields) instead."""
    from collections.abc import Mapping

    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"a stage parameter must be JSON data, not {type(value).__name__}")


def file_names(nodes, base=None):
    """The names of input files as a stage's output sees them, for its parameter node: SCons decides on
    content alone, so a stage whose output shows or uses a file's name (an input's title, a class folder's
    file order, a template's path) must carry the names, in order, among its parameters. `base`: names
    relative to this folder (else the base names)."""
    import SCons.Util

    names = []
    for node in SCons.Util.flatten(nodes):
        path = node if isinstance(node, str) else node.get_abspath()
        names.append(os.path.relpath(path, base) if base else os.path.basename(path))
    return names


def setting(env, value, name):
    """A stage parameter: the value given to the method, else the construction variable TINY_<NAME>.

    The defaults of all TINY_* variables come from one table, codegen.config.VARIABLES (what `scons -h` lists):
    a firmware repo sets env["TINY_EPOCHS"] = 30 once instead of passing it to every call.
    """
    return env["TINY_" + name] if value is None else value


def tool_versions(*distributions):
    """Installed versions of the packages a stage's output depends on, for its parameter node.

    With a shared CacheDir, a model trained or compiled by another TensorFlow/TVM version must not be taken
    for this one's: the versions are part of the cache key. Read from package metadata, without importing.
    """
    from importlib import metadata

    versions = {}
    for dist in distributions:
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    return versions


def program_identity(*names):
    """{program: "realpath size mtime" or None} of the external compilers/emulators a stage's output depends
    on (host gcc, arm-none-eabi-gcc, QEMU, simavr): an upgraded package replaces the file. No subprocess:
    `scons` reads its build files fast; Debian installs keep the package's mtimes, so machines with the same
    package version agree (a shared cache still works)."""
    import shutil

    found = {}
    for name in names:
        path = shutil.which(name)
        if path is None:
            found[name] = None
            continue
        real = os.path.realpath(path)
        st = os.stat(real)
        found[name] = f"{real} {st.st_size} {int(st.st_mtime)}"
    return found


@contextlib.contextmanager
def _interruptible():
    """Lets Ctrl-C and SIGTERM (a CI timeout, `kill`) stop a long in-process stage (training, codegen, a hung
    arduino-cli) at once.

    SCons' own handlers only stop scheduling new work, so a running Python action would go on for minutes.
    In the main thread (-j1) a KeyboardInterrupt is raised inside the stage instead; its atomic writes then
    drop their temporary files, child processes are killed (codegen.device.arduino kills arduino-cli's whole
    process group), and SCons' handler is called so that the build stops. Worker threads (-j2 and up)
    cannot install handlers: there the main thread's handler asks the stages to stop (codegen.interrupt).
    """
    if threading.current_thread() is not threading.main_thread():
        from codegen import interrupt

        # Blocked here, a signal wakes the main thread (asleep in SCons' join()), whose handler stops the stages
        # (stop_stages_on_signals); codegen.proc unblocks them for the children it starts.
        interrupt.block_stop_signals()
        yield
        return

    def stop(signum, frame):
        from codegen import interrupt

        interrupt.request_stop()
        raise KeyboardInterrupt

    scons_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in scons_handlers:
        signal.signal(sig, stop)
    try:
        yield
    except KeyboardInterrupt:
        for sig, handler in scons_handlers.items():
            if callable(handler):
                handler(sig, None)
        raise
    finally:
        for sig, handler in scons_handlers.items():
            signal.signal(sig, handler)


def stop_stages_on_signals():
    """Makes SCons' own Ctrl-C/SIGTERM/SIGHUP handler also stop the stages running in worker threads (-j2+).

    SCons installs its handler when the build starts (Jobs._setup_sig_handler) and offers no hook: it only
    stops scheduling, and a running stage went on (a 30-minute arduino-cli timeout, minutes of training).
    The wrapper chains codegen.interrupt.request_stop after SCons' handler: child process groups are killed
    and training ends at the next batch, each with the usual "interrupted" error line."""
    import SCons.Taskmaster.Job as job

    # A private method of the pinned SCons (4.11); another SCons without it keeps its own behaviour.
    setup = getattr(job.Jobs, "_setup_sig_handler", None)
    if setup is None or getattr(setup, "tinyml_chained", False):
        return

    def chained_setup(self):
        setup(self)
        from codegen import interrupt

        for sig in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)):
            scons_handler = signal.getsignal(sig) if sig is not None else None
            if callable(scons_handler):
                def handler(signum, frame, scons_handler=scons_handler):
                    scons_handler(signum, frame)
                    interrupt.request_stop()

                signal.signal(sig, handler)

    chained_setup.tinyml_chained = True
    job.Jobs._setup_sig_handler = chained_setup


_built_here = set()        # abspaths of targets a stage action really wrote in this process


def mark_built(targets):
    """Records that a stage's action ran to completion in this process and wrote `targets` (tinyml_state
    records, caches and pushes only those)."""
    for t in targets:
        _built_here.add(t.get_abspath())


def really_built(node):
    """Whether `node` was really built by this process: not a dry run (-n), a question (-q), a failed or
    interrupted stage. A stage's target counts only when its action finished (mark_built); the target of an
    action that is not ours (SCons' own builders) only when SCons executes actions at all."""
    import SCons.Action

    if not SCons.Action.execute_actions:
        return False
    if node.get_abspath() in _built_here:
        return True
    try:
        actions = node.get_executor().get_action_list()
    except (AttributeError, TypeError):
        return False
    return not any(getattr(a, "tinyml_stage", False) for a in actions)


def stage_action(fn, comstr_var, default_comstr):
    """Wraps `fn(target, source, params)` (paths as strings) as an SCons action.

    A PipelineError becomes one error line and a failed build; the stage's writes are atomic, so no target it
    leaves behind is trusted later.
    """

    def action(target, source, env):
        params = {}
        source = [s for s in source if not is_code_node(s)]
        if source and isinstance(source[-1], SCons.Node.Python.Value):
            params = json.loads(source[-1].read())
            source = source[:-1]
        from codegen.quiet import stage_running

        try:
            with stage_running(), _interruptible():
                fn([str(t) for t in target], [str(s) for s in source], params)
        except KeyboardInterrupt:
            sys.stderr.write(f"error: interrupted: {target[0]} was not written; run scons again to redo this step\n")
            return 2
        except PipelineError as e:
            sys.stderr.write(f"error: {e}\n")
            return 1
        except OSError as e:
            if e.errno not in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
                raise
            # Outputs are written atomically: the half-written temporary file is already gone.
            sys.stderr.write(f"error: no space left while writing {target[0]} ({e.strerror}); free disk space "
                             "(or raise the file size limit) and run scons again\n")
            return 1
        mark_built(target)
        return 0

    def stage_line(target, source, env, executor=None):
        # The stage's COMSTR with the run's stage counter in front ("[4/11] TVM codegen ..."): counted when
        # SCons announces the action, i.e. when it really runs (an up-to-date stage prints nothing).
        from tinyml_progress import numbered

        line = env.subst("$" + comstr_var, target=target, source=source, executor=executor)
        return numbered(line) if line else line

    action.__name__ = fn.__name__
    stage = SCons.Action.Action(action, strfunction=stage_line)
    stage.tinyml_stage = True       # what tinyml_progress counts
    stage.tinyml_fn = fn            # whose codegen imports are the stage's code version (code_node)
    return comstr_var, default_comstr, stage


CODE_PREFIX = "tinyml code version "


def is_code_node(node):
    return isinstance(node, SCons.Node.Python.Value) and str(node.value).startswith(CODE_PREFIX)


_code_nodes = {}


def code_node(env, action):
    """A Value holding the version of the project's code a stage's output comes from (codegen.codeversion: the
    codegen modules its function imports, and theirs), or None for an action that is not a stage's."""
    fn = getattr(action, "tinyml_fn", None)
    if fn is None:
        return None
    if fn not in _code_nodes:
        import inspect

        from codegen import codeversion

        # a function of a codegen module (a backend's step) imports relatively: resolved against its package
        module = getattr(fn, "__module__", "") or ""
        package = module.rpartition(".")[0] if module.startswith("codegen.") else "codegen"
        modules = codeversion.modules_of_function(inspect.getsource(fn), package)
        _code_nodes[fn] = CODE_PREFIX + codeversion.version(modules) if modules else None
    return env.Value(_code_nodes[fn]) if _code_nodes[fn] else None


def _locking(emitter):
    """Every stage builder takes the build lock when a build file declares its targets: any SConstruct that
    loads the tool, ours or a firmware repo's, holds it from then until scons exits (tinyml_state)."""

    def emit(target, source, env):
        from tinyml_state import hold_build_lock

        hold_build_lock(os.path.dirname(target[0].get_abspath()))
        return emitter(target, source, env) if emitter else (target, source)

    return emit


def literal_nodes(env, paths):
    """File nodes for paths that are data, not SCons expressions: SCons substitutes `$NAME` in a string it is
    given, so an image, class or folder called `a$b` became `a` ("not found"). Nodes pass through."""
    import SCons.Util

    return [env.fs.File(p) if SCons.Util.is_String(p) else p for p in SCons.Util.flatten(paths)]


def _literal_path_builder():
    import SCons.Builder

    class LiteralPathBuilder(SCons.Builder.BuilderBase):
        """A stage builder whose string targets and sources are taken as file paths, `$` included."""

        def _execute(self, env, target, source, *args, **kw):
            if target is not None:
                target = literal_nodes(env, target)
            if source is not None:
                source = literal_nodes(env, source)
                code = code_node(env, self.action)
                if code is not None:
                    # before the parameters, which stay last (emitters read them there)
                    at = len(source) - 1 if source and isinstance(source[-1], SCons.Node.Python.Value) else len(source)
                    source = source[:at] + [code] + source[at:]
            return super()._execute(env, target, source, *args, **kw)

    return LiteralPathBuilder


def _declared_inputs_only():
    """A source scanner that adds nothing: a stage declares every file it reads.

    SCons' C scanner skips a generated file that is not yet known to be current when its reader is first
    visited, and never rescans it if that file then turns out up to date (nothing was built). After a failed
    build, the host check's implicit dependencies were saved half-empty and the next two runs redid it. All
    the generated C a stage compiles is among its explicit sources already."""
    import SCons.Scanner

    return SCons.Scanner.Base(lambda node, env, path: [], name="TinyDeclaredInputs")


def add_builder(env, name, stage, emitter=None, **kw):
    comstr_var, default_comstr, action = stage
    env.SetDefault(**{comstr_var: default_comstr})
    kw.setdefault("source_scanner", _declared_inputs_only())
    env["BUILDERS"][name] = _literal_path_builder()(action=action, emitter=_locking(emitter), **kw)
