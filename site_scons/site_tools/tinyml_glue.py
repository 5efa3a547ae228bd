"""Shared glue for the tinyml site tools: stage actions with parameters carried as Value nodes.

A stage's last source is a Value holding its parameters as canonical JSON: changing one parameter changes that
node's signature and rebuilds exactly the targets that depend on it.
"""
import json
import sys

import SCons.Action
import SCons.Node.Python

from codegen.errors import PipelineError


def params_node(env, **params):
    return env.Value(json.dumps(params, sort_keys=True))


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


def stage_action(fn, comstr_var, default_comstr):
    """Wraps `fn(target, source, params)` (paths as strings) as an SCons action.

    A PipelineError becomes one error line and a failed build; the stage's writes are atomic, so no target it
    leaves behind is trusted later.
    """

    def action(target, source, env):
        params = {}
        if source and isinstance(source[-1], SCons.Node.Python.Value):
            params = json.loads(source[-1].read())
            source = source[:-1]
        try:
            fn([str(t) for t in target], [str(s) for s in source], params)
        except PipelineError as e:
            sys.stderr.write(f"error: {e}\n")
            return 1
        return 0

    action.__name__ = fn.__name__
    return comstr_var, default_comstr, SCons.Action.Action(action, "$" + comstr_var)


def add_builder(env, name, stage, emitter=None, **kw):
    import SCons.Builder

    comstr_var, default_comstr, action = stage
    env.SetDefault(**{comstr_var: default_comstr})
    env["BUILDERS"][name] = SCons.Builder.Builder(action=action, emitter=emitter, **kw)
