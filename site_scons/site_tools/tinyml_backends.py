"""SCons tool: the backends other than the TVM route (codegen/backends: TFLM, TinyMaix, ...) as builders. A loop, no
backend-specific code: each Step a backend declares becomes one builder call whose parameters are the Step's
params plus only the board fields it uses; every backend with a sketch gets compile/upload/verify; with several
backends, `memory`/`simulate` add the side-by-side table (backends.json/.txt)."""
import os

from tinyml_glue import add_builder, literal_nodes, params_node, program_identity, stage_action, tool_versions


def _builder(env, owner, step):
    """One builder per (backend, step id), made when first used: its action is the Step's function."""
    name = f"TinyStep_{owner}_{step.id}"
    if name not in env["BUILDERS"]:
        add_builder(env, name, stage_action(step.action, step.comstr or f"TINY_{owner.upper()}_{step.id.upper()}COMSTR",
                                            step.title))
    return getattr(env, name)


def _step_params(folder, board, step):
    """The Step's params, plus what enters its signature of the board (only the fields it declares: the action
    gets the Board back with codegen.boards.from_signature), its scratch folder and its tools' versions."""
    from codegen import boards

    params = dict(step.params)
    if step.board_fields == step.ALL_FIELDS:
        params["board"] = boards.stage_signature(board, ()) | {"entry": boards.entry_of(board)}
    elif step.board_fields:
        params["board"] = boards.stage_signature(board, step.board_fields)
    if step.work_dir:
        params["work_dir"] = os.path.join(folder, step.work_dir)
    if step.programs:
        params["programs"] = program_identity(*step.programs)
    if step.versions:
        params["versions"] = tool_versions(*step.versions)
    return params


def TinySteps(env, steps, folder, inputs, board=None, owner="tvm"):
    """Declares `steps` (codegen.backends.base.Step) in order, their outputs under `folder`; `inputs`: {source
    name: node(s)} for the names the steps read (codegen.backends.base.INPUTS, or "step:<id>" of a step declared
    elsewhere). Returns ({stage: [nodes]}, {step id: [nodes]})."""
    by_step, by_stage = {}, {}
    for step in steps:
        sources = []
        for src in step.sources:
            if src in inputs:
                sources += env.Flatten([inputs[src]])
            elif src.startswith("step:"):
                sources += by_step[src[len("step:"):]]
            else:
                sources += literal_nodes(env, [src])
        targets = [os.path.join(folder, o) for o in step.outputs]
        nodes = _builder(env, owner, step)(targets, sources + [params_node(env, **_step_params(folder, board, step))])
        if step.work_dir:
            env.Clean(nodes, env.Dir(os.path.join(folder, step.work_dir)))    # undeclared scratch (`scons -c`)
        if step.precious:
            env.Precious(nodes)     # unchanged files keep their mtime (arduino-cli's incremental build)
        by_step[step.id] = list(nodes)
        for stage in (step.stage,) if isinstance(step.stage, str) else step.stage:
            by_stage.setdefault(stage, []).extend(nodes)
    return by_stage, by_step


def TinyBackendSteps(env, backend, ctx, inputs):
    """Declares `backend`'s steps for one board; `inputs`: {name: node} of codegen.backends.base.INPUTS.
    Returns ({stage: [nodes]}, {step id: [nodes]})."""
    by_stage, by_step = env.TinySteps(backend.steps(ctx), os.path.join(ctx.out, backend.folder), inputs, ctx.board,
                                      owner=backend.name)
    if backend.compilation_database and "sketch" in by_step:
        name = backend.sketch_name(ctx.cfg)
        by_stage["compiledb"] = env.TinyCompilationDatabase(os.path.join(ctx.out, backend.folder), by_step["sketch"],
                                                            sketch_name=name) + list(by_step["sketch"])
    return by_stage, by_step


def TinyBackendFirmware(env, backend, ctx, by_step, memory, expected, *, upload):
    """compile (and, for the board's one program, upload and verify) of a backend's sketch; `expected`: the
    scores the board must print (the backend's own "expected" step's, if it has one)."""
    cfg, board = ctx.cfg, ctx.board
    backend_dir = os.path.join(ctx.out, backend.folder)
    name = backend.sketch_name(cfg)
    folders, library_step = backend.arduino_libraries(ctx)
    flags = list(cfg["arduino_flags"])
    for folder in folders:
        flags += ["--library", folder]
    compiled = env.TinyArduinoCompile(backend_dir, list(by_step["sketch"]) + list(by_step.get(library_step, [])),
                                      board, sketch_name=name, cli=cfg["arduino_cli"], flags=flags,
                                      memory=memory)
    staged = {"compile": list(compiled)}
    if upload:
        staged["upload"] = env.TinyArduinoUpload(backend_dir, compiled, board, sketch_name=name, cli=cfg["arduino_cli"],
                                                 port=cfg["port"], force=cfg["force"])
        staged["verify"] = env.TinyArduinoVerify(by_step.get("expected", [expected])[0], board, cli=cfg["arduino_cli"],
                                                 port=cfg["port"], baud=cfg["baud"], timeout=cfg["monitor_timeout"],
                                                 tolerance=cfg["tolerance"])
    return staged


def _compare(target, source, p):
    from codegen.backends import compare

    print(compare.write_table(p["backends"], source, target[0], target[1], p["board"]))


def TinyBackendComparison(env, out, board, results):
    """backends.json/.txt: the backends side by side. `results`: [(backend name, memory.json, simulate.json or
    None, check.json or None)] in BACKEND= order."""
    sources, layout = [], []
    for name, *files in results:
        row = [name]
        for f in files:
            row.append(None if f is None else len(sources))
            sources += [] if f is None else [f]
        layout.append(row)
    return env.TinyCompareBackends([os.path.join(out, "backends.json"), os.path.join(out, "backends.txt")],
                                   sources + [params_node(env, board=board["name"], backends=layout)])


def generate(env):
    add_builder(env, "TinyCompareBackends", stage_action(_compare, "TINY_COMPARECOMSTR", "Comparing backends -> $TARGET"))
    for method in (TinySteps, TinyBackendSteps, TinyBackendFirmware, TinyBackendComparison):
        env.AddMethod(method)


def exists(env):
    return True
