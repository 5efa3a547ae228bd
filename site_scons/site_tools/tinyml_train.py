"""SCons tool: the train stage (a Keras MobileNet, ARCH= V1/V2/V3Small, with the tutorial's head)."""
import os

from tinyml_glue import add_builder, literal_nodes, params_node, setting, stage_action, tool_versions

DEFAULT_ARCH = "mobilenet_v1"


def _train(target, source, p):
    from codegen.stages import train

    weights = p["weights"]
    if weights.startswith(("http://", "https://")):
        from codegen.stages.download import fetch

        weights = fetch(weights, os.path.join(p["weights_cache"], os.path.basename(weights.split("?")[0])),
                        show_progress=True)
    train.train(source[0], target[0], target[1], alpha=p["alpha"], epochs=p["epochs"], seed=p["seed"],
                batch=p["batch"], weights_path=weights or None, lr=p["lr"], depth=p["depth"],
                arch=p.get("arch", DEFAULT_ARCH))


def TinyTrain(env, build_dir, dataset_npz, *, alpha=None, epochs=None, seed=None, batch=None, weights=None,
              lr=None, depth=None, arch=None):
    """model.keras (batch-1 input) and train_history.json under build_dir. Unset parameters: $TINY_<NAME>."""
    from codegen.stages import train

    alpha, epochs, seed = setting(env, alpha, "ALPHA"), setting(env, epochs, "EPOCHS"), setting(env, seed, "SEED")
    batch, weights = setting(env, batch, "BATCH"), setting(env, weights, "WEIGHTS")
    lr, depth, arch = setting(env, lr, "LR"), setting(env, depth, "DEPTH"), setting(env, arch, "ARCH")
    sources = [dataset_npz]
    if weights and not weights.startswith(("http://", "https://")):
        sources += literal_nodes(env, weights)
    # The tutorial's architecture stays out of the parameters: models trained before ARCH= existed keep their
    # signature (and cache key) instead of being retrained for nothing.
    arch_param = {} if arch == DEFAULT_ARCH else {"arch": arch}
    return env.TinyTrainModel(
        [os.path.join(build_dir, "model.keras"), os.path.join(build_dir, "train_history.json")],
        sources + [params_node(env, alpha=alpha, epochs=epochs, seed=seed, batch=batch, weights=weights, lr=lr, depth=depth,
                               weights_cache=os.path.join(build_dir, "weights"),
                               versions=tool_versions("tensorflow", "keras"), **arch_param)],
        TINY_ARCH_TITLE=train.TITLES.get(arch, arch))


def generate(env):
    env.SetDefault(TINY_ARCH_TITLE="MobileNetV1")
    add_builder(env, "TinyTrainModel", stage_action(_train, "TINY_TRAINCOMSTR", "Training $TINY_ARCH_TITLE -> $TARGET"))
    env.AddMethod(TinyTrain)


def exists(env):
    return True
