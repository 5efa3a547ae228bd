"""SCons tool: the dataset stage (built-in synthetic images, or DATA= class folders) packed for training."""
import os

from tinyml_glue import add_builder, file_names, params_node, setting, stage_action


def _synthesize(target, source, p):
    from codegen.stages import dataset

    dataset.generate_synthetic(os.path.dirname(target[0]), p["per_class"], p["seed"], target[0])


def _pack(target, source, p):
    from codegen.stages import dataset

    if p["data"]:
        classes = dataset.list_class_folder(p["data"], warn=lambda msg: None)   # warned when SConstruct was read
        where = f"DATA={p['data']}"
    else:
        classes = dataset.index_classes(source[0])
        where = "the synthetic dataset"
    if sorted(classes) != p["classes"]:
        from codegen.errors import PipelineError
        raise PipelineError(f"{where}: class folders changed while building; run scons again")
    heldout = dict(zip(p["classes"], target[1:]))
    dataset.pack(classes, target[0], heldout, p["size"], p["channels"], p["seed"], where=where)


def TinyDataset(env, build_dir, *, data=None, samples=None, seed=None, size=None, channels=None,
                synthetic_dir="$TINY_SYNTHETIC_DIR"):
    """dataset.npz plus one held-out PNG per class under build_dir; returns (npz node, {class: png node}).

    `size`: the side of a square model input, or [height, width] (a user's Keras model)."""
    from codegen.stages import dataset

    data, samples, seed = setting(env, data, "DATA"), setting(env, samples, "SAMPLES"), setting(env, seed, "SEED")
    size, channels = setting(env, size, "SIZE"), setting(env, channels, "CHANNELS")

    files = None
    if data:
        classes = dataset.list_class_folder(data)
        sources = [f for files in classes.values() for f in files]
        names = sorted(classes)
        # Which class each image is in, and their order (the split and the held-out image follow it).
        files = file_names(sources, base=data)
    else:
        index = env.TinySyntheticImages(os.path.join(env.subst(synthetic_dir), "index.json"),
                                        params_node(env, per_class=samples, seed=seed))
        # The images beside the index are not declared targets, so a cache could restore the index without
        # them: always generate (deterministic, seconds) instead of retrieving.
        env.NoCache(index)
        # The PNGs are undeclared (their number is a parameter): `scons -c` removes their folder with the index.
        env.Clean(index, os.path.dirname(index[0].get_abspath()))
        sources = index
        names = [dataset.CLASS_OTHER, dataset.CLASS_CAR]
    targets = [os.path.join(build_dir, "dataset.npz")] + [os.path.join(build_dir, "heldout", f"{c}.png")
                                                           for c in names]
    nodes = env.TinyDatasetPack(targets, sources + [params_node(env, data=data, classes=names, size=size,
                                                                 channels=channels, seed=seed,
                                                                 **({"files": files} if files else {}))])
    return nodes[0], dict(zip(names, nodes[1:]))


def generate(env):
    env.SetDefault(TINY_SYNTHETIC_DIR="build/dataset/synthetic")
    add_builder(env, "TinySyntheticImages",
                stage_action(_synthesize, "TINY_SYNTHCOMSTR", "Generating synthetic car/not-car images -> $TARGET"))
    add_builder(env, "TinyDatasetPack",
                stage_action(_pack, "TINY_PACKCOMSTR", "Packing dataset -> $TARGET"))
    env.AddMethod(TinyDataset)


def exists(env):
    return True
