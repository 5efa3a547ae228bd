"""The cheap half of a trial: an untrained model of the candidate's architecture, and random calibration data.

    python -m codegen.tune.untrained OUT_DIR --arch A --alpha A --size N --channels C [--depth D] --classes K

writes OUT_DIR/untrained.keras (the same network the train stage builds, batch-1 input, initial weights) and
OUT_DIR/rep.npy (random pixels). The probe build quantizes it on that data (MODEL= + REP_DATA=), generates,
plans and counts it through the ordinary stages: flash, RAM and instruction counts depend on the architecture,
not on the weights, so an infeasible candidate is known in seconds and never trains.
"""
import argparse
import os
import sys

from ..fsutil import atomic_path


def write(out_dir, *, arch, alpha, size, channels, depth, classes, seed=0, samples=8):
    import numpy as np

    from ..modelio.tf_env import import_tf
    from ..stages.train import build_model

    import_tf(seed)
    os.makedirs(out_dir, exist_ok=True)
    model = build_model(size, channels, alpha, classes, batch_size=1, depth=depth, arch=arch)
    # Untrained, the head's logits hardly vary (a range of ~1e-6): their int8 scale would be one no trained
    # model has (the softmax refuses it). Spread the biases over +-1, as a trained head's logits are spread;
    # the network, its tensors and its sizes stay the same.
    head = model.get_layer("scores")
    kernel, bias = head.get_weights()
    head.set_weights([kernel, np.linspace(-1.0, 1.0, bias.shape[0]).astype(bias.dtype)])
    with atomic_path(os.path.join(out_dir, "untrained.keras"), suffix=".keras") as tmp:
        model.save(tmp)
    rng = np.random.default_rng(seed)
    with atomic_path(os.path.join(out_dir, "rep.npy"), suffix=".npy") as tmp:
        np.save(tmp, rng.uniform(0, 255, (samples, size, size, channels)).astype("float32"))


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m codegen.tune.untrained", description=__doc__.splitlines()[0])
    ap.add_argument("out_dir")
    ap.add_argument("--arch", default="mobilenet_v1")
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--channels", type=int, required=True)
    ap.add_argument("--depth", type=int, default=None)
    ap.add_argument("--classes", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    write(a.out_dir, arch=a.arch, alpha=a.alpha, size=a.size, channels=a.channels, depth=a.depth, classes=a.classes,
          seed=a.seed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
