"""SCons tool `tinyml_progress`: the stage counter (`[4/11] TVM codegen ...`) and the result summary printed when a
build that ran stages ends.

`env.TinyProgress()`, called once at the end of the SConstruct (every target declared, nothing built yet), walks
the requested targets' dependency graph and counts the stage actions this run will execute: a stage is counted
when its target is out of date (SCons' own `is_up_to_date()`, the test the Taskmaster makes), always built
(upload, monitor) or below a counted stage; one that the finished-target records or CACHE_DIR= will supply
instead is not. The count is known before the first stage runs, so it holds with -j2 too. It is an upper
bound: a stage whose inputs are rebuilt byte for byte the same (SCons compares content) is then skipped, and the
counter ends below N.

When the build ends without a failure and at least one stage ran, the summary (codegen.stages.summary) of every
board's result files that belong to the requested targets is printed after SCons' "done building targets".
A no-op build prints nothing more than SCons' own "is up to date" lines.
"""
import atexit
import os
import sys
import threading

import SCons.Node
import SCons.Node.FS

_lock = threading.Lock()
_state = {"total": None, "started": 0, "include": None, "boards": {}, "planned": False}


def numbered(line):
    """The stage line with its number in this run; plain when no plan was made (a tool used without
    TinyProgress)."""
    with _lock:
        _state["started"] += 1
        index, total = _state["started"], _state["total"]
    if total is None:
        return line
    return f"[{index}/{max(index, total)}] {line}"


def register_board(board, out_dir):
    """TinyMLPipeline's boards: where the summary looks for each one's result files."""
    from codegen import boards

    _state["boards"][os.path.abspath(out_dir)] = boards.board(board)


def _is_stage(node):
    if not node.has_builder():
        return False
    try:
        actions = node.get_executor().get_action_list()
    except AttributeError:
        return False
    return any(getattr(a, "tinyml_stage", False) for a in actions)


def _would_be_retrieved(env, node):
    if getattr(node, "nocache", False) or not isinstance(node, SCons.Node.FS.File):
        return False
    cache = env.get_CacheDir()
    check = getattr(cache, "would_retrieve", None)
    return bool(check and check(node))


def plan(env, roots):
    """(number of stage actions that will run, set of the absolute paths of every file in the targets' graph)."""
    will_build, executors, files = {}, set(), set()

    def visit(root):
        # Iterative post-order: a long chain of generated files must not hit Python's recursion limit.
        stack = [(root, False)]
        while stack:
            node, expanded = stack.pop()
            if node in will_build and not expanded:
                continue
            # Explicit dependencies only: scanning a generated sketch's #includes before it exists would leave
            # SCons with stale implicit dependencies (a rebuild on the next run). A node whose inputs are all
            # current is scanned below by is_up_to_date(), as SCons itself would.
            kids = list(node.children(scan=0)) + list(node.prerequisites or [])
            if not expanded:
                will_build.setdefault(node, False)      # a cycle guard; SCons itself reports real cycles
                stack.append((node, True))
                stack.extend((k, False) for k in kids if k not in will_build)
                continue
            below = any(will_build.get(k, False) for k in kids)
            if isinstance(node, SCons.Node.FS.File):
                files.add(node.get_abspath())
            builds = below
            if node.has_builder() and not below:
                if node.always_build:
                    builds = True
                elif isinstance(node, SCons.Node.FS.File):
                    builds = not node.is_up_to_date() and not (_is_stage(node) and _would_be_retrieved(env, node))
            if builds and _is_stage(node):
                executors.add(id(node.get_executor()))
            will_build[node] = builds

    for root in roots:
        visit(root)
    return len(executors), files


def _requested(env):
    import SCons.Script

    targets = list(SCons.Script.BUILD_TARGETS) or list(SCons.Script.DEFAULT_TARGETS)
    nodes = []
    for target in targets:
        nodes.extend(env.arg2nodes(target, env.fs.Entry))
    return nodes


def _print_summary():
    import SCons.Script

    if not _state["started"] or SCons.Script.GetBuildFailures():
        return
    from codegen.stages import summary

    from codegen import backends

    others = [(name, backends.get(name).folder) for name in backends.names() if name != "tvm"]
    entries = [(board, summary.collect(out_dir, _state["include"], others))
               for out_dir, board in _state["boards"].items()]
    text = summary.format_summary(entries)
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


def TinyProgress(env, targets=None):
    """Counts this run's stage actions (for the [i/N] prefix) and arranges the summary at the end; `targets`
    defaults to what SCons will build (the command line's targets, else the Default() ones)."""
    from SCons.Script import GetOption

    if _state["planned"] or any(GetOption(o) for o in ("help", "clean", "question", "no_exec")):
        return
    _state["planned"] = True
    roots = env.arg2nodes(targets, env.fs.Entry) if targets is not None else _requested(env)
    total, files = plan(env, roots)
    _state["total"], _state["include"] = total, files
    atexit.register(_print_summary)


def generate(env):
    env.AddMethod(TinyProgress)


def exists(env):
    return True
