"""Dataset stage: the built-in synthetic car / not-car images, and packing any class-folder dataset into one
array file that training, quantization and evaluation read.

The synthetic set stands in for the tutorial's Stanford Cars + COCO (which need a download): side-view cars of
random shape, colour, scale, position and tilt on cluttered backgrounds, against distractors that share their
parts (wheels alone, boxes, houses, trees, bicycles, figures). It is deterministic for a given seed:
image i of a class depends only on (seed, class, i).
"""
import hashlib
import json
import os
import sys

from ..modelio import images as imagesmod
from .. import inputfiles
from ..errors import PipelineError
from ..fsutil import atomic_open, atomic_path

CLASS_CAR = "target"      # the tutorial's folder names: cars are the target, COCO the random class
CLASS_OTHER = "random"
SYNTH_RESOLUTION = 96     # drawn larger than the model input so the resize path is the real one


# ---------------------------------------------------------------------------------------------- synthetic
def _rand_color(rng, lo=0, hi=255):
    return tuple(int(c) for c in rng.randint(lo, hi + 1, 3))


def _background(rng, res):
    import numpy as np
    from PIL import Image, ImageDraw

    top, bottom = np.array(_rand_color(rng)), np.array(_rand_color(rng))
    t = np.linspace(0, 1, res)[:, None, None]
    arr = (top * (1 - t) + bottom * t) * np.ones((res, res, 3))
    arr += rng.normal(0, rng.uniform(2, 14), arr.shape)
    im = Image.fromarray(np.clip(arr, 0, 255).astype("uint8"))
    d = ImageDraw.Draw(im)
    if rng.rand() < 0.6:                          # a horizon / road line
        y = int(rng.uniform(0.55, 0.9) * res)
        d.rectangle([0, y, res, res], fill=_rand_color(rng, 40, 160))
    for _ in range(rng.randint(0, 4)):            # clutter
        x0, y0 = rng.randint(0, res, 2)
        w, h = rng.randint(3, res // 3, 2)
        kind = rng.randint(3)
        box = [int(x0), int(y0), int(x0 + w), int(y0 + h)]
        if kind == 0:
            d.rectangle(box, fill=_rand_color(rng))
        elif kind == 1:
            d.ellipse(box, fill=_rand_color(rng))
        else:
            d.line(box, fill=_rand_color(rng), width=int(rng.randint(1, 4)))
    return im


def _wheel(d, cx, cy, r, rng):
    d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=_rand_color(rng, 0, 50))
    h = r * rng.uniform(0.35, 0.6)
    d.ellipse([cx - h, cy - h, cx + h, cy + h], fill=_rand_color(rng, 120, 230))


def _car(d, rng, res):
    w = res * rng.uniform(0.55, 0.95)
    h = w * rng.uniform(0.22, 0.32)
    x0 = rng.uniform(-0.05 * res, res - w + 0.05 * res)
    y0 = rng.uniform(0.35 * res, 0.75 * res)
    body = _rand_color(rng)
    d.rounded_rectangle([x0, y0, x0 + w, y0 + h], radius=h * rng.uniform(0.1, 0.45), fill=body)
    # cabin: a trapezoid on top, shifted forward or back, with windows
    ch = h * rng.uniform(0.6, 1.0)
    c0 = x0 + w * rng.uniform(0.15, 0.35)
    c1 = x0 + w * rng.uniform(0.65, 0.85)
    slant = w * rng.uniform(0.04, 0.12)
    d.polygon([(c0, y0), (c0 + slant, y0 - ch), (c1 - slant, y0 - ch), (c1, y0)], fill=body)
    glass = _rand_color(rng, 120, 230)
    m = (c0 + c1) / 2
    pad = ch * 0.18
    d.polygon([(c0 + pad, y0 - pad * 0.5), (c0 + slant + pad * 0.6, y0 - ch + pad), (m - pad * 0.3, y0 - ch + pad),
               (m - pad * 0.3, y0 - pad * 0.5)], fill=glass)
    d.polygon([(m + pad * 0.3, y0 - pad * 0.5), (m + pad * 0.3, y0 - ch + pad), (c1 - slant - pad * 0.6, y0 - ch + pad),
               (c1 - pad, y0 - pad * 0.5)], fill=glass)
    r = h * rng.uniform(0.35, 0.5)
    for fx in (rng.uniform(0.15, 0.25), rng.uniform(0.75, 0.85)):
        _wheel(d, x0 + w * fx, y0 + h, r, rng)
    if rng.rand() < 0.7:                          # lights
        d.rectangle([x0 + w - 3, y0 + h * 0.25, x0 + w, y0 + h * 0.45], fill=(250, 240, 150))


def _distractor(d, rng, res):
    kind = rng.choice([0, 1, 3, 4, 5, 6])
    x0, y0 = rng.uniform(0.05, 0.5) * res, rng.uniform(0.3, 0.7) * res
    w, h = rng.uniform(0.3, 0.6) * res, rng.uniform(0.15, 0.45) * res
    col = _rand_color(rng)
    if kind == 0:                                 # wheels with no body
        r = rng.uniform(0.06, 0.12) * res
        _wheel(d, x0, y0 + h, r, rng)
        _wheel(d, x0 + w, y0 + h, r, rng)
    elif kind == 1:                               # a box, no wheels
        d.rounded_rectangle([x0, y0, x0 + w, y0 + h * 0.6], radius=h * 0.1, fill=col)
    elif kind == 3:                               # house
        d.rectangle([x0, y0, x0 + w, y0 + h], fill=col)
        d.polygon([(x0 - 4, y0), (x0 + w / 2, y0 - h * 0.7), (x0 + w + 4, y0)], fill=_rand_color(rng))
        d.rectangle([x0 + w * 0.4, y0 + h * 0.4, x0 + w * 0.6, y0 + h], fill=_rand_color(rng, 0, 90))
    elif kind == 4:                               # tree
        d.rectangle([x0 + w * 0.45, y0, x0 + w * 0.55, y0 + h * 1.3], fill=(90, 60, 30))
        d.ellipse([x0, y0 - h, x0 + w, y0 + h * 0.4], fill=_rand_color(rng, 0, 160))
    elif kind == 5:                               # bicycle: two wheels, thin frame
        r = rng.uniform(0.08, 0.14) * res
        _wheel(d, x0, y0 + h, r, rng)
        _wheel(d, x0 + w * 0.7, y0 + h, r, rng)
        d.line([x0, y0 + h, x0 + w * 0.35, y0 + h * 0.4, x0 + w * 0.7, y0 + h], fill=col, width=3)
    else:                                         # person-like figure
        d.ellipse([x0, y0 - h * 0.5, x0 + h * 0.3, y0 - h * 0.2], fill=col)
        d.line([x0 + h * 0.15, y0 - h * 0.2, x0 + h * 0.15, y0 + h * 0.6], fill=col, width=4)
        d.line([x0, y0 + h, x0 + h * 0.15, y0 + h * 0.6, x0 + h * 0.3, y0 + h], fill=col, width=3)


def synth_image(seed, cls, index, res=SYNTH_RESOLUTION):
    """One synthetic RGB image (PIL) of class `cls`, a pure function of its arguments."""
    import numpy as np
    from PIL import ImageDraw

    key = int.from_bytes(hashlib.sha256(f"{seed}/{cls}/{index}".encode()).digest()[:4], "little")
    rng = np.random.RandomState(key)
    im = _background(rng, res)
    d = ImageDraw.Draw(im)
    if cls == CLASS_CAR:
        _car(d, rng, res)
    else:
        for _ in range(rng.randint(1, 3)):
            _distractor(d, rng, res)
    if rng.rand() < 0.5:
        im = im.transpose(0)                      # mirror: cars face both ways
    angle = rng.uniform(-12, 12)
    im = im.rotate(angle, resample=2, fillcolor=_rand_color(rng))
    return im


def generate_synthetic(out_dir, per_class, seed, index_path):
    """Writes out_dir/<class>/NNNN.png for both classes and an index (file list + sha256) at index_path."""
    from ..progress import counting

    with counting(2 * per_class, "drawing synthetic images") as advance:
        entries = _draw_synthetic(out_dir, per_class, seed, index_path, advance)
    with atomic_open(index_path) as f:
        json.dump({"seed": seed, "per_class": per_class, "classes": entries}, f, indent=1)


def _draw_synthetic(out_dir, per_class, seed, index_path, advance):
    entries = {}
    for cls in (CLASS_OTHER, CLASS_CAR):
        cls_dir = os.path.join(out_dir, cls)
        os.makedirs(cls_dir, exist_ok=True)
        files = []
        for i in range(per_class):
            advance()
            path = os.path.join(cls_dir, f"{i:04d}.png")
            with atomic_path(path, suffix=".png") as tmp:
                synth_image(seed, cls, i).save(tmp, format="PNG")
            with open(path, "rb") as f:
                files.append([os.path.relpath(path, os.path.dirname(index_path)),
                              hashlib.sha256(f.read()).hexdigest()])
        # A smaller SAMPLES than last time must not leave stale images that a folder scan would pick up.
        for name in os.listdir(cls_dir):
            if name.endswith(".png") and int(name.split(".")[0] or 0) >= per_class:
                os.remove(os.path.join(cls_dir, name))
        entries[cls] = files
    return entries


# ---------------------------------------------------------------------------------------------- folders
def list_class_folder(root, warn=None):
    """{class: [image paths]} for root/<class>/*, classes sorted like image_dataset_from_directory.

    Only regular files are listed: a FIFO, socket or device named like an image (or a symlink loop, a broken
    link) would block or fail whoever reads it, SCons hashing its sources included; they are skipped, named in
    one warning (`warn`, default: stderr; None-returning callable to silence it)."""
    if not os.path.isdir(root):
        raise PipelineError(f"DATA={root!r}: no such folder; give a folder with one subfolder of images per class")
    classes = sorted(d for d in os.listdir(root)
                     if os.path.isdir(os.path.join(root, d)) and not imagesmod.is_hidden(d))
    result, skipped = {}, []
    for cls in classes:
        files = []
        # os.walk does not follow symlinked folders below the class folder: no loop can make it walk forever.
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, cls)):
            dirnames[:] = sorted(d for d in dirnames if not imagesmod.is_hidden(d))   # .thumbnails/ etc.
            for f in sorted(filenames):
                path = os.path.join(dirpath, f)
                if not imagesmod.is_image_name(f):
                    continue
                what = inputfiles.not_regular(path)
                if what is None:
                    files.append(path)
                else:
                    skipped.append(f"{path} ({what})")
        result[cls] = files
    if skipped:
        warn = warn or (lambda msg: sys.stderr.write(f"warning: {msg}\n"))
        warn(f"DATA={root}: skipped {len(skipped)} file(s) that are not regular files:\n  "
             + "\n  ".join(skipped[:20]) + ("\n  ..." if len(skipped) > 20 else ""))
    return result


def index_classes(index_path):
    with open(index_path) as f:
        index = json.load(f)
    base = os.path.dirname(index_path)
    return {cls: [os.path.join(base, rel) for rel, _ in files] for cls, files in sorted(index["classes"].items())}


def check_classes(classes, where):
    if len(classes) < 2:
        raise PipelineError(f"{where}: found {len(classes)} class folder(s) {sorted(classes)}; need at least 2 "
                            "(e.g. target/ with cars and random/ with anything else)")
    empty = [c for c, files in classes.items() if len(files) < 2]
    if empty:
        raise PipelineError(f"{where}: class folder(s) {', '.join(empty)} hold fewer than 2 images "
                            "(one is held out for the sketch); add JPEG/PNG images")


MIN_IMAGES_PER_CLASS = 10     # below this, one validation image decides a class's accuracy: warned about


def stratified_split(y, order, val_fraction):
    """Validation mask: per class, `val_fraction` of its images (at least one, never all), taken in the seeded
    `order`. A plain shuffle of 2 vs 500 images left the small class out of validation entirely and the report
    said 1.0."""
    import numpy as np

    is_val = np.zeros(len(y), dtype=bool)
    for label in np.unique(y):
        members = [i for i in order if y[i] == label]
        n_val = min(max(1, int(round(len(members) * val_fraction))), len(members) - 1)
        is_val[members[:n_val]] = True
    return is_val


def _load_class(paths, size, channels, skipped, advance):
    """[(path, array)] of the readable images; the others' errors go to `skipped`."""
    loaded = []
    for path in paths:
        try:
            loaded.append((path, imagesmod.load_image(path, size, channels)))
        except PipelineError as e:
            skipped.append(str(e))
        advance()
    return loaded


# The demo: this many held-out images in all (balanced over the classes, at least one per class) are embedded in
# the sketch by default, which prints a line for each and "<correct>/<n> correct" after them.
DEMO_INPUTS = 8


def demo_per_class(n_classes):
    return max(1, DEMO_INPUTS // max(1, n_classes))


def pack(classes, out_npz, heldout_paths, size, channels, seed, val_fraction=0.2, where="dataset", warn=None):
    """Loads every image at the model size into one .npz (x uint8 NHWC, y int, split, class names).

    Unreadable files (corrupt, truncated, zero bytes, not an image despite the extension) are skipped with one
    warning that lists them: one bad JPEG among thousands should not stop training. A class left with fewer
    than 2 readable images is an error.
    Per class, the first readable image (sorted) is held out from training and validation and written as PNG
    to heldout_paths[class]; a class with enough images (MIN_IMAGES_PER_CLASS left for training) holds out
    demo_per_class() in all, the others a seeded draw, not chosen by hand. All held-out images are stored in the
    .npz (demo_x, demo_y): the sketch's demo embeds them by default, images the model never saw.
    The 80/20 train/validation split is a seeded shuffle within each class (stratified), stable across runs.
    """
    import sys

    import numpy as np
    from PIL import Image

    from ..progress import counting

    warn = warn or (lambda msg: sys.stderr.write(f"warning: {msg}\n"))
    check_classes(classes, where)
    names = sorted(classes)
    xs, ys, skipped = [], [], []
    demo_x, demo_y = [], []
    per_class = demo_per_class(len(names))
    # A bar on a terminal only: on a pipe, a line for a few seconds' reading is noise.
    with counting(sum(len(v) for v in classes.values()), f"reading {where}", announce=False) as advance:
        loaded_by_class = {cls: _load_class(classes[cls], size, channels, skipped, advance) for cls in names}
    for label, cls in enumerate(names):
        loaded = loaded_by_class[cls]
        if len(loaded) < 2:
            raise PipelineError(f"{where}: class {cls} has {len(loaded)} readable image(s) (need 2; "
                                f"{len(classes[cls]) - len(loaded)} unreadable); add JPEG/PNG images")
        # The first image (sorted) is held out as before; a class that can spare them while keeping
        # MIN_IMAGES_PER_CLASS for training and validation gives the demo more, a seeded draw from the rest.
        extra = per_class - 1 if len(loaded) - per_class >= MIN_IMAGES_PER_CLASS else 0
        pick = [0] + sorted(1 + np.random.RandomState(seed + label).permutation(len(loaded) - 1)[:extra])
        held = loaded[0][0]
        with atomic_path(heldout_paths[cls], suffix=".png") as tmp:
            with Image.open(held) as im:
                imagesmod.open_as(im, "L" if channels == 1 else "RGB").save(tmp, format="PNG")
        for i in pick:
            demo_x.append(loaded[i][1])
            demo_y.append(label)
        chosen = set(int(i) for i in pick)
        for i, (_, arr) in enumerate(loaded):
            if i not in chosen:
                xs.append(arr)
                ys.append(label)
    if skipped:
        warn(f"{where}: skipped {len(skipped)} unreadable image(s):\n  " + "\n  ".join(skipped[:20])
             + ("\n  ..." if len(skipped) > 20 else ""))
    x = np.stack(xs)
    y = np.asarray(ys, dtype=np.int64)
    order = np.random.RandomState(seed).permutation(len(y))
    is_val = stratified_split(y, order, val_fraction)
    n_val = int(is_val.sum())
    few = {names[c]: int((y == c).sum()) for c in range(len(names)) if (y == c).sum() < MIN_IMAGES_PER_CLASS}
    if few:
        warn(f"{where}: class(es) " + ", ".join(f"{c} ({n} image(s) after the held-out one)" for c, n in few.items())
             + f" have fewer than {MIN_IMAGES_PER_CLASS} images: the model barely sees them and the validation "
             "accuracy says little about them; add images (the split keeps each class in both parts when it can)")
    with atomic_path(out_npz, suffix=".npz") as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, x=x, y=y, is_val=is_val, order=order, class_names=np.asarray(names),
                     demo_x=np.stack(demo_x), demo_y=np.asarray(demo_y, dtype=np.int64))
    return {"classes": names, "count": int(len(y)), "val": int(n_val), "skipped": skipped}


def load_packed(path):
    import numpy as np

    with np.load(path) as z:
        return {k: z[k] for k in z.files}
