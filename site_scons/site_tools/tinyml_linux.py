"""SCons tool: the Linux single-board route (BOARD=rpi4, rpi5, rpi_zero2: boards.json entries with "kind":
"linux"). The quantized .tflite becomes a deployable bundle (model, labels, run.py, requirements.txt,
samples), checked in an isolated LiteRT venv against tf.lite, measured (memory report), and copied to and run
on the board over ssh. The bundle, check and report are the LiteRT backend's steps (codegen/backends/litert.py);
here are the ssh deploy (upload, monitor) and the methods a firmware repo calls alone.
"""
import os

from tinyml_glue import literal_nodes, params_node, setting, stage_action

BUNDLE_DIR = "bundle"


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
    from codegen.backends import litert

    input_files = literal_nodes(env, input_files)
    step = litert.bundle_step(os.path.join(build_dir, BUNDLE_DIR), [str(i) for i in input_files],
                              quant=setting(env, quant, "QUANT"), input_names=input_names, class_labels=class_labels,
                              labels_file=bool(labels_file), class_source=class_source, seed=seed)
    inputs = {"tflite": tflite, "inputs": input_files, "labels_file": literal_nodes(env, labels_file or [])}
    return env.TinySteps([step], build_dir, inputs, board, owner="litert")[1]["bundle"]


def TinyLinuxCheck(env, build_dir, bundle_nodes, *, runtime_venv=None):
    """linuxcheck.json: the bundle run by its run.py in the isolated runtime venv, scores equal to tf.lite's."""
    from codegen.backends import litert

    step = litert.check_step(os.path.dirname(str(bundle_nodes[0])), runtime_venv=runtime_venv)
    return env.TinySteps([step], build_dir, {"step:bundle": bundle_nodes}, owner="litert")[1]["check"]


def TinyLinuxMemoryReport(env, build_dir, bundle_nodes, board, *, runtime_venv=None, runs=50):
    """memory.json / memory.txt for a Linux board: model size, parameters, activations, measured RSS and x86
    latency (a rough guide, labelled as such)."""
    from codegen.backends import litert

    step = litert.memory_step(os.path.dirname(str(bundle_nodes[0])), runtime_venv=runtime_venv, runs=runs)
    return env.TinySteps([step], build_dir, {"step:bundle": bundle_nodes}, board, owner="litert")[1]["memory"]


def _remote_params(board, cfg, bundle_dir):
    from codegen.linux import remote

    return {"host": cfg["host"], "ssh_port": cfg["ssh_port"], "ssh_key": cfg["ssh_key"],
            "ssh_known_hosts": cfg["ssh_known_hosts"], "ssh_accept_new": cfg["ssh_accept_new"],
            "remote_dir": cfg["remote_dir"] or remote.default_remote_dir(board["name"]), "bundle_dir": bundle_dir}


def TinyLinuxUpload(env, bundle_nodes, board, cfg, *, check=None, force=None):
    """An always-built alias: asks the board for its bundle hash every time and copies only a changed bundle.
    `check` (linuxcheck.json) gates it: a bundle whose scores differ from tf.lite's does not go to the board."""
    force = setting(env, force, "FORCE")
    bundle_dir = os.path.dirname(str(bundle_nodes[0]))
    params = params_node(env, force=force, upload_with=cfg["upload_with"], **_remote_params(board, cfg, bundle_dir))
    gate = env.arg2nodes(check) if check else []
    alias = env.Alias(f"upload-{board['name']}", list(bundle_nodes) + gate + [params],
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
    alias = env.Alias(f"monitor-{board['name']}", [upload, check, params], env["TINY_LINUX_MONITOR_ACTION"])
    env.AlwaysBuild(alias)
    return alias


def TinyLinuxDeploy(env, bundle_nodes, check, board, cfg):
    """upload and monitor (= verify: the ssh run checks the scores) of a Linux board's bundle."""
    upload = env.TinyLinuxUpload(bundle_nodes, board, cfg, check=check, force=cfg["force"])
    monitor = env.TinyLinuxMonitor(upload, check, board, cfg, timeout=cfg["monitor_timeout"])
    return {"upload": upload, "monitor": monitor, "verify": monitor}


def generate(env):
    env.Tool("tinyml_backends")     # env.TinySteps
    for name, fn, comstr in (("UPLOAD", _upload, "ssh upload"), ("MONITOR", _monitor, "ssh run")):
        comstr_var, default, action = stage_action(fn, f"TINY_LINUX{name}COMSTR", comstr)
        env.SetDefault(**{comstr_var: default})
        env[f"TINY_LINUX_{name}_ACTION"] = action
    for method in (TinyLinuxBundle, TinyLinuxCheck, TinyLinuxMemoryReport, TinyLinuxUpload, TinyLinuxMonitor,
                   TinyLinuxDeploy):
        env.AddMethod(method)


def exists(env):
    return True
