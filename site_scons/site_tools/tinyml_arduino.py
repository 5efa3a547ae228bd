"""SCons tool: arduino-cli compile (only when a sketch file or a flag changed; of a copy of the sketch that carries
its build id), upload (always asked for, after compile; skipped only when the board on the port reports this
build id), the serial monitor (miniterm) and `verify`, which checks the board's scores against TFLite's."""
import os

from tinyml_glue import add_builder, params_node, setting, stage_action

# The board fields each action uses (its parameter node: the board's name and these; the action gets the Board
# back by name). compile.json depends on the fqbn (and the build id on it) and the core only; the port is found by
# USB id or fqbn. The title appears in messages only, read afresh.
COMPILE_FIELDS = ("fqbn", "core")
SERIAL_FIELDS = ("fqbn", "usb_ids")


def _board(p):
    from codegen import boards

    return boards.from_signature(p["board"])


def _compile(target, source, p):
    import json

    from codegen.device import arduino

    from codegen.device import memreport

    if p["memory"]:
        with open(p["memory"]) as f:
            memreport.check_fits(json.load(f))        # the size gate: fail before arduino-cli runs

    result = arduino.compile_sketch(p["cli"], p["sketch_dir"], _board(p), p["build_path"], p["output_dir"],
                                    target[0], extra_flags=p["flags"], staged_dir=p["staged_dir"])
    diagnostics = arduino.compiler_diagnostics(result)
    if diagnostics:
        print(diagnostics)
    # arduino-cli's own section sizes: what the firmware really takes, next to memory.txt's estimate.
    for section in (result.get("builder_result") or {}).get("executable_sections_size") or []:
        size, limit = section.get("size", 0), section.get("max_size") or 0
        share = f" of {limit:,} B ({100 * size / limit:.1f}%)" if limit else ""
        print(f"  firmware {section.get('name')}: {size:,} B{share}")


def _upload(target, source, p):
    from codegen.device import arduino

    port, uploaded, why = arduino.upload(p["cli"], _board(p), p["port"], p["output_dir"], p["sketch_dir"],
                                         p["compile_json"], force=p["force"], baud=p["baud"])
    print(why)
    if uploaded:
        print(f"uploaded to {port}")


def _port(p):
    """PORT=, else the board's port as arduino-cli sees it, else (no arduino-cli) by USB id through pyserial."""
    import shutil

    from codegen.device import arduino, ports

    if p["port"]:
        return p["port"]
    if shutil.which(p["cli"]):
        return arduino.detect_port(arduino.find_cli(p["cli"]), _board(p))
    return ports.detect(_board(p))


def _monitor(target, source, p):
    from codegen.device import arduino

    arduino.monitor(_port(p), p["baud"], timeout_s=p["timeout"])


def _verify(target, source, p):
    from codegen.device import arduino

    summary = arduino.verify(_port(p), p["expected"], baud=p["baud"], timeout_s=p["timeout"],
                             tolerance=p["tolerance"])
    for row in summary["images"]:
        print(f"  {row['printed']}" + ("" if row["exact"] else f"   (TFLite: {row['expected_line']})"))
    print("  scores match TFLite exactly" if summary["exact"] else
          f"  scores within TOLERANCE={p['tolerance']} of TFLite's (max difference {summary['max_abs_diff']})")
    import json

    with open(p["expected"]) as f:
        demo = json.load(f).get("demo")
    if demo:        # the board made TFLite's decisions (checked above), so its demo line is TFLite's
        print(f"  {demo['line']} (held-out images, on the board)")


def TinyArduinoCompile(env, build_dir, sketch_nodes, board, *, sketch_name=None, cli=None, flags=None,
                       memory=None):
    """compile.json after a successful arduino-cli compile; `memory` (memory.json) gates it on the board's size."""
    from codegen import boards

    sketch_name, cli = setting(env, sketch_name, "SKETCH"), setting(env, cli, "ARDUINO_CLI")
    flags = setting(env, flags, "ARDUINO_FLAGS")
    sketch_dir = os.path.join(build_dir, sketch_name)
    memory = env.arg2nodes(memory)[0] if memory else None
    # Firmware files are written beside compile.json by arduino-cli, undeclared: never take it from a cache;
    # `scons -c` removes them and arduino-cli's build folder with it.
    env.Clean(os.path.join(build_dir, "firmware", "compile.json"),
              [env.Dir(os.path.join(build_dir, d)) for d in ("firmware", "arduino-build", "firmware-sketch")])
    return env.NoCache(env.TinyArduinoCompileSketch(
        os.path.join(build_dir, "firmware", "compile.json"),
        list(sketch_nodes) + ([memory] if memory else []) + [params_node(
            env, cli=cli, board=boards.stage_signature(board, COMPILE_FIELDS), sketch_dir=sketch_dir,
            flags=list(flags), memory=str(memory or ""),
                                          build_path=os.path.join(build_dir, "arduino-build"),
                                          output_dir=os.path.join(build_dir, "firmware"),
                                          staged_dir=os.path.join(build_dir, "firmware-sketch", sketch_name))]))


def TinyArduinoUpload(env, build_dir, compiled, board, *, sketch_name=None, cli=None, port=None, force=None):
    """An always-built alias: asks for an upload every time; arduino.upload skips it when the board on the port
    reports this build's id."""
    from codegen import boards

    sketch_name, cli = setting(env, sketch_name, "SKETCH"), setting(env, cli, "ARDUINO_CLI")
    port, force = setting(env, port, "PORT"), setting(env, force, "FORCE")
    compiled = env.arg2nodes(compiled)[0]
    board = boards.board(board)
    params = params_node(env, cli=cli, board=boards.stage_signature(board, SERIAL_FIELDS), port=port, force=force,
                         compile_json=str(compiled), sketch_dir=os.path.join(build_dir, sketch_name),
                         output_dir=os.path.join(build_dir, "firmware"), baud=board.serial_baud)
    alias = env.Alias(f"upload-{board.name}", [compiled, params], env["TINY_UPLOAD_ACTION"])
    env.AlwaysBuild(alias)
    return alias


def _serial_params(env, board, cli, port, baud, timeout):
    from codegen import boards

    cli, port = setting(env, cli, "ARDUINO_CLI"), setting(env, port, "PORT")
    board = boards.board(board)
    baud = setting(env, baud, "BAUD") or board.serial_baud
    return dict(cli=cli, board=boards.stage_signature(board, SERIAL_FIELDS), port=port, baud=baud,
                timeout=setting(env, timeout, "MONITOR_TIMEOUT"))


def TinyArduinoMonitor(env, board, *, cli=None, port=None, baud=None, timeout=None):
    """`monitor-<board>`: the interactive serial monitor. It needs nothing built: watching a board does not wait
    for a model to train."""
    from codegen import boards

    board = boards.board(board)
    alias = env.Alias(f"monitor-{board.name}", [params_node(env, **_serial_params(env, board, cli, port, baud,
                                                                                   timeout))],
                      env["TINY_MONITOR_ACTION"])
    env.AlwaysBuild(alias)
    return alias


def TinyArduinoVerify(env, expected, board, *, cli=None, port=None, baud=None, timeout=None, tolerance=None):
    """`verify-<board>`: the board's printed scores against expected.json (TFLite's), within TOLERANCE."""
    from codegen import boards

    board = boards.board(board)
    expected = env.arg2nodes(expected)[0]
    params = params_node(env, **_serial_params(env, board, cli, port, baud, timeout), expected=str(expected),
                         tolerance=setting(env, tolerance, "TOLERANCE"))
    alias = env.Alias(f"verify-{board.name}", [expected, params], env["TINY_VERIFY_ACTION"])
    env.AlwaysBuild(alias)
    return alias


def generate(env):
    add_builder(env, "TinyArduinoCompileSketch",
                stage_action(_compile, "TINY_COMPILECOMSTR", "arduino-cli compile -> $TARGET"))
    for name, fn, comstr in (("UPLOAD", _upload, "arduino-cli upload"), ("MONITOR", _monitor, "Serial monitor"),
                             ("VERIFY", _verify, "Checking the board's scores against TFLite's")):
        comstr_var, default, action = stage_action(fn, f"TINY_{name}COMSTR", comstr)
        env.SetDefault(**{comstr_var: default})
        env[f"TINY_{name}_ACTION"] = action
    env.AddMethod(TinyArduinoCompile)
    env.AddMethod(TinyArduinoUpload)
    env.AddMethod(TinyArduinoMonitor)
    env.AddMethod(TinyArduinoVerify)


def exists(env):
    return True
