"""SCons tool: the Linux single-board route (BOARD=rpi4, rpi5, rpi_zero2: boards.json entries with "kind":
"linux"). The quantized .tflite becomes a deployable bundle (model, labels, run.py, requirements.txt,
samples), checked in an isolated LiteRT venv against tf.lite, measured (memory report), and copied to and run
on the board over ssh. The stages themselves are in codegen.linux.
"""
import os

from tinyml_glue import add_builder, params_node, setting, stage_action, tool_versions

BUNDLE_DIR = "bundle"
# The board fields each action uses (its parameter node: the board's name and these; the action gets the Board
# back by name): bundle.json names the board and its title; the report shows and measures with these.
BUNDLE_FIELDS = ("title",)
REPORT_FIELDS = ("title", "cpu", "cores", "clock_hz", "ram_bytes", "ram_note")


def _board(p):
    from codegen.device import boards

    return boards.from_signature(p["board"])


def _bundle(target, source, p):
    from codegen.linux import bundle

    tflite, rest = source[0], source[1:]
    labels_file, inputs = (rest[0], rest[1:]) if p["labels_file"] else (None, rest)
    bundle.make_bundle(tflite, inputs, p["bundle_dir"], names=p["names"], board=_board(p), quant=p["quant"],
                       class_labels=p["class_labels"], labels_file=labels_file, class_source=p["class_source"],
                       seed=p["seed"])


def _check(target, source, p):
    from codegen.linux import check

    check.check_bundle(p["bundle_dir"], target[0], venv_root=p["runtime_venv"] or None)


def _report(target, source, p):
    from codegen.linux import report

    report.linux_report(p["bundle_dir"], _board(p), target[0], target[1], venv_root=p["runtime_venv"] or None,
                        runs=p["runs"])


def _remote(p):
    from codegen.linux import remote

    return remote.Remote(p["host"], port=p["ssh_port"], key=p["ssh_key"], known_hosts=p["ssh_known_hosts"],
                         accept_new=p["ssh_accept_new"])


def _upload(target, source, p):
    from codegen.linux import remote

    where = _remote(p)
    result = remote.upload(p["bundle_dir"], where, p["remote_dir"], force=p["force"], upload_with=p["upload_with"])
    if result["uploaded"]:
        print(f"  bundle copied to {where.describe()}:{p['remote_dir']} with {result['tool']} "
              f"(sha256 {result['sha256'][:16]})")
    else:
        print(f"  {where.describe()}:{p['remote_dir']} already has this bundle (sha256 {result['sha256'][:16]}): "
              "upload skipped (FORCE=1 uploads anyway)")


def _monitor(target, source, p):
    from codegen.errors import PipelineError
    from codegen.linux import remote

    where = _remote(p)
    if p["run_args"]:
        remote.stream_remote(where, p["remote_dir"], p["remote_python"], p["run_args"], timeout_s=p["timeout"])
        return
    summary = remote.monitor(where, p["remote_dir"], p["remote_python"], p["check_json"], timeout_s=p["timeout"])
    for row in summary["samples"]:
        if row.get("missing"):
            print(f"  {row['name']}: no result from the board")
            continue
        print(f"  {row['name']}: {row['top']} {row['confidence']} {row['latency_ms']:.2f} ms {row['scores']}"
              + ("" if row["exact"] else f"   (tf.lite: {row['expected']})"))
    if not summary["exact"]:
        raise PipelineError(f"run.py on {where.describe()} ({summary['runtime']}) does not give tf.lite's scores "
                            "(see the lines above)")
    print(f"  scores on {where.describe()} ({summary['runtime']}, Python {summary['python']}) equal tf.lite's")


def TinyLinuxBundle(env, build_dir, tflite, input_files, board, *, input_names=None, quant=None, class_labels=None,
                    labels_file=None, class_source="the dataset", seed=0):
    """build_dir/bundle/: model.tflite, labels.txt, run.py, requirements.txt, bundle.json, samples/<inputs>.
    Returns the file nodes (model.tflite first)."""
    from codegen.device import boards
    from codegen.linux import bundle

    quant = setting(env, quant, "QUANT")
    input_files = [env.File(i) if isinstance(i, str) else i for i in input_files]
    names = bundle.sample_names([str(i) for i in input_files], input_names)
    bundle_dir = os.path.join(build_dir, BUNDLE_DIR)
    static = [env.File(os.path.join(bundle.BUNDLE_FILES_DIR, n)) for n in bundle.STATIC_FILES]
    sources = [tflite] + ([env.File(labels_file)] if labels_file else []) + input_files
    nodes = env.TinyLinuxBundleFiles(
        [os.path.join(bundle_dir, n) for n in bundle.file_names(names)],
        sources + [params_node(env, bundle_dir=bundle_dir, names=names,
                               board=boards.stage_signature(board, BUNDLE_FIELDS), quant=quant,
                               class_labels=list(class_labels or []), labels_file=bool(labels_file),
                               class_source=class_source, seed=seed, format=bundle.BUNDLE_FORMAT)])
    # run.py and requirements.txt are package files: editing them rebuilds the bundle (not sources: the action
    # takes its inputs positionally).
    env.Depends(nodes, static)
    return nodes


def TinyLinuxCheck(env, build_dir, bundle_nodes, *, runtime_venv=None):
    """linuxcheck.json: the bundle run by its run.py in the isolated runtime venv, scores equal to tf.lite's."""
    bundle_dir = os.path.dirname(str(bundle_nodes[0]))
    return env.TinyLinuxCheckBundle(os.path.join(build_dir, "linuxcheck.json"), list(bundle_nodes) + [params_node(
        env, bundle_dir=bundle_dir, runtime_venv=runtime_venv or "", versions=tool_versions("tensorflow"))])


def TinyLinuxMemoryReport(env, build_dir, bundle_nodes, board, *, runtime_venv=None, runs=50):
    """memory.json / memory.txt for a Linux board: model size, parameters, activations, measured RSS and x86
    latency (a rough guide, labelled as such)."""
    from codegen.device import boards

    bundle_dir = os.path.dirname(str(bundle_nodes[0]))
    params = params_node(env, bundle_dir=bundle_dir, board=boards.stage_signature(board, REPORT_FIELDS),
                         runtime_venv=runtime_venv or "", runs=runs)
    return env.TinyLinuxReportBundle([os.path.join(build_dir, "memory.json"), os.path.join(build_dir, "memory.txt")],
                                     list(bundle_nodes) + [params])


def _name(board):
    from codegen.device import boards

    return boards.board(board).name


def _remote_params(board, cfg, bundle_dir):
    from codegen.device import boards
    from codegen.linux import remote

    board = boards.board(board)

    return {"host": cfg["host"], "ssh_port": cfg["ssh_port"], "ssh_key": cfg["ssh_key"],
            "ssh_known_hosts": cfg["ssh_known_hosts"], "ssh_accept_new": cfg["ssh_accept_new"],
            "remote_dir": cfg["remote_dir"] or remote.default_remote_dir(board.name), "bundle_dir": bundle_dir}


def TinyLinuxUpload(env, bundle_nodes, board, cfg, *, check=None, force=None):
    """An always-built alias: asks the board for its bundle hash every time and copies only a changed bundle.
    `check` (linuxcheck.json) gates it: a bundle whose scores differ from tf.lite's does not go to the board."""
    force = setting(env, force, "FORCE")
    bundle_dir = os.path.dirname(str(bundle_nodes[0]))
    params = params_node(env, force=force, upload_with=cfg["upload_with"], **_remote_params(board, cfg, bundle_dir))
    gate = env.arg2nodes(check) if check else []
    alias = env.Alias(f"upload-{_name(board)}", list(bundle_nodes) + gate + [params],
                      env["TINY_LINUX_UPLOAD_ACTION"])
    env.AlwaysBuild(alias)
    return alias


def TinyLinuxMonitor(env, upload, check, board, cfg, *, timeout=None):
    """Uploads if needed, then runs run.py on the board: on the bundled samples, compared with the check's
    tf.lite scores, or with RUN_ARGS= (e.g. --camera) as the user asks."""
    timeout = setting(env, timeout, "MONITOR_TIMEOUT")
    check = env.arg2nodes(check)[0]
    params = params_node(env, check_json=str(check), remote_python=cfg["remote_python"], run_args=cfg["run_args"],
                         timeout=timeout, **_remote_params(board, cfg, ""))
    alias = env.Alias(f"monitor-{_name(board)}", [upload, check, params], env["TINY_LINUX_MONITOR_ACTION"])
    env.AlwaysBuild(alias)
    return alias


def TinyLinuxStages(env, build_dir, board, cfg, tflite, input_files, input_names=None, class_labels=None,
                    class_source="the dataset"):
    """The Linux-board stages after quantize: {"bundle", "check", "memory", "upload", "monitor", "verify"}
    (`verify`, the MCUs' score check, is `monitor` here: the ssh run checks the scores)."""
    bundle_nodes = env.TinyLinuxBundle(build_dir, tflite, input_files, board, input_names=input_names,
                                       quant=cfg["quant"], class_labels=class_labels,
                                       labels_file=cfg["labels_file"] or None, class_source=class_source,
                                       seed=cfg["seed"])
    check = env.TinyLinuxCheck(build_dir, bundle_nodes, runtime_venv=cfg["runtime_venv"])
    memory = env.TinyLinuxMemoryReport(build_dir, bundle_nodes, board, runtime_venv=cfg["runtime_venv"],
                                       runs=cfg["bench_runs"])
    upload = env.TinyLinuxUpload(bundle_nodes, board, cfg, check=check, force=cfg["force"])
    monitor = env.TinyLinuxMonitor(upload, check, board, cfg, timeout=cfg["monitor_timeout"])
    return {"bundle": bundle_nodes, "check": check, "memory": memory, "upload": upload, "monitor": monitor,
            "verify": monitor}


def generate(env):
    add_builder(env, "TinyLinuxBundleFiles",
                stage_action(_bundle, "TINY_LINUXBUNDLECOMSTR", "Bundling for the Linux board -> $TARGET"))
    add_builder(env, "TinyLinuxCheckBundle",
                stage_action(_check, "TINY_LINUXCHECKCOMSTR", "LiteRT check in the runtime venv -> $TARGET"))
    add_builder(env, "TinyLinuxReportBundle",
                stage_action(_report, "TINY_LINUXREPORTCOMSTR", "Linux board memory/latency report -> $TARGET"))
    for name, fn, comstr in (("UPLOAD", _upload, "ssh upload"), ("MONITOR", _monitor, "ssh run")):
        comstr_var, default, action = stage_action(fn, f"TINY_LINUX{name}COMSTR", comstr)
        env.SetDefault(**{comstr_var: default})
        env[f"TINY_LINUX_{name}_ACTION"] = action
    for method in (TinyLinuxBundle, TinyLinuxCheck, TinyLinuxMemoryReport, TinyLinuxUpload, TinyLinuxMonitor,
                   TinyLinuxStages):
        env.AddMethod(method)


def exists(env):
    return True
