import json
import os

import numpy as np
import pytest
from PIL import Image

from codegen.stages import dataset
from codegen.errors import PipelineError


def test_synthetic_is_deterministic_per_seed_and_index(tmp_path):
    a = np.asarray(dataset.synth_image(0, "target", 3))
    b = np.asarray(dataset.synth_image(0, "target", 3))
    c = np.asarray(dataset.synth_image(1, "target", 3))
    d = np.asarray(dataset.synth_image(0, "random", 3))
    assert a.shape == (96, 96, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, d)


def test_generate_synthetic_writes_index_and_prunes_stale_files(tmp_path):
    index = tmp_path / "index.json"
    dataset.generate_synthetic(str(tmp_path), 5, 0, str(index))
    data = json.loads(index.read_text())
    assert sorted(data["classes"]) == ["random", "target"]
    assert len(data["classes"]["target"]) == 5
    assert len(os.listdir(tmp_path / "target")) == 5
    dataset.generate_synthetic(str(tmp_path), 3, 0, str(index))
    assert sorted(os.listdir(tmp_path / "target")) == ["0000.png", "0001.png", "0002.png"]


def _folder(tmp_path, spec):
    root = tmp_path / "data"
    rng = np.random.RandomState(0)
    for cls, items in spec.items():
        (root / cls).mkdir(parents=True)
        for name, size, mode in items:
            arr = rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(arr).convert(mode).save(root / cls / name)
    return root


def test_pack_class_folders_any_size_and_format(tmp_path):
    root = _folder(tmp_path, {
        "cat": [("a.jpg", (120, 80), "RGB"), ("b.png", (30, 30), "L"), ("c.png", (64, 200), "RGB")],
        "dog": [("x.jpeg", (50, 50), "RGB"), ("y.png", (77, 33), "RGB")],
    })
    (root / "dog" / "notes.txt").write_text("not an image, ignored by extension")
    classes = dataset.list_class_folder(str(root))
    assert {k: len(v) for k, v in classes.items()} == {"cat": 3, "dog": 2}
    held = {c: str(tmp_path / f"held_{c}.png") for c in classes}
    info = dataset.pack(classes, str(tmp_path / "d.npz"), held, 32, 1, seed=0)
    packed = dataset.load_packed(str(tmp_path / "d.npz"))
    # one image per class held out
    assert info["count"] == 3 and packed["x"].shape == (3, 32, 32, 1)
    assert list(packed["y"]) == [0, 0, 1]
    assert packed["is_val"].sum() == 1
    assert Image.open(held["cat"]).size == (120, 80)  # held-out image kept at full size
    again = tmp_path / "again.npz"
    dataset.pack(classes, str(again), held, 32, 1, seed=0)
    assert np.array_equal(dataset.load_packed(str(again))["is_val"], packed["is_val"])


@pytest.mark.parametrize("spec,needle", [
    ({"only": [("a.png", (8, 8), "RGB"), ("b.png", (8, 8), "RGB")]}, "need at least 2"),
    ({"a": [("a.png", (8, 8), "RGB"), ("b.png", (8, 8), "RGB")], "b": []}, "fewer than 2 images"),
])
def test_pack_rejects_unusable_folders(tmp_path, spec, needle):
    root = _folder(tmp_path, spec)
    classes = dataset.list_class_folder(str(root))
    with pytest.raises(PipelineError, match=needle):
        dataset.pack(classes, str(tmp_path / "d.npz"), {c: str(tmp_path / c) for c in classes}, 32, 3, 0)
    assert not (tmp_path / "d.npz").exists()


def test_unreadable_images_are_skipped_with_one_warning(tmp_path):
    root = _folder(tmp_path, {"a": [("1.png", (8, 8), "RGB"), ("2.png", (1, 1), "RGB"), ("3.jpg", (40, 30), "RGB")],
                              "b": [("1.png", (8, 8), "RGB"), ("2.png", (8, 8), "RGB")]})
    (root / "b" / "3.png").write_bytes(b"\x89PNG garbage")          # corrupt
    (root / "b" / "4.jpg").write_bytes(b"")                         # zero bytes
    (root / "b" / "5.png").write_text("not an image")               # wrong content, image extension
    good = (root / "a" / "3.jpg").read_bytes()
    (root / "a" / "4.jpg").write_bytes(good[: len(good) // 2])      # truncated JPEG
    Image.new("RGB", (10000, 10000), (10, 20, 30)).save(root / "a" / "5.jpg", quality=50)   # huge
    warnings = []
    classes = dataset.list_class_folder(str(root))
    info = dataset.pack(classes, str(tmp_path / "d.npz"), {c: str(tmp_path / f"{c}.png") for c in classes}, 32, 3,
                        0, warn=warnings.append)
    unreadable = [w for w in warnings if "unreadable" in w]       # the other one: classes under 10 images
    assert len(unreadable) == 1 and len(warnings) == 2
    for bad in ("b/3.png", "b/4.jpg", "b/5.png", "a/4.jpg"):
        assert bad in unreadable[0]
    # a: 1.png, the 1x1 2.png, 3.jpg and the 10000x10000 5.jpg load (1.png held out); b: 1.png held out, 2.png
    assert info["count"] == 4 and len(info["skipped"]) == 4
    packed = dataset.load_packed(str(tmp_path / "d.npz"))
    assert packed["x"].shape[1:] == (32, 32, 3)


def test_class_with_only_unreadable_images_fails(tmp_path):
    root = _folder(tmp_path, {"a": [("1.png", (8, 8), "RGB"), ("2.png", (8, 8), "RGB")],
                              "b": [("1.png", (8, 8), "RGB")]})
    (root / "b" / "2.png").write_bytes(b"\x89PNG garbage")
    classes = dataset.list_class_folder(str(root))
    with pytest.raises(PipelineError, match="class b has 1 readable image"):
        dataset.pack(classes, str(tmp_path / "d.npz"), {c: str(tmp_path / f"{c}.png") for c in classes}, 32, 3,
                     0, warn=lambda m: None)
    assert not (tmp_path / "d.npz").exists()


def test_demo_images_are_held_out_balanced_and_seeded(tmp_path):
    """The demo's images: demo_per_class() per class where a class can spare them (the first image sorted plus a
    seeded draw), one where it cannot; never in training or validation; the same for the same seed."""
    from PIL import Image

    rng = np.random.RandomState(1)
    classes = {}
    for cls, n in (("big", 30), ("small", 5)):
        (tmp_path / cls).mkdir()
        classes[cls] = []
        for i in range(n):
            path = tmp_path / cls / f"{i:02d}.png"
            Image.fromarray(rng.randint(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
            classes[cls].append(str(path))
    held = {c: str(tmp_path / f"held_{c}.png") for c in classes}
    info = dataset.pack(classes, str(tmp_path / "a.npz"), held, 8, 3, 0, warn=lambda m: None)
    packed = dataset.load_packed(str(tmp_path / "a.npz"))
    big, small = packed["class_names"].tolist().index("big"), packed["class_names"].tolist().index("small")
    per_class = dataset.demo_per_class(2)
    assert list(packed["demo_y"]).count(big) == per_class and list(packed["demo_y"]).count(small) == 1
    assert info["count"] == 30 - per_class + 5 - 1
    train = {x.tobytes() for x in packed["x"]}
    assert not any(x.tobytes() in train for x in packed["demo_x"])
    first_big = np.asarray(Image.open(classes["big"][0]).convert("RGB"))
    assert packed["demo_x"][list(packed["demo_y"]).index(big)].tobytes() == first_big.tobytes()
    dataset.pack(classes, str(tmp_path / "b.npz"), held, 8, 3, 0, warn=lambda m: None)
    assert np.array_equal(dataset.load_packed(str(tmp_path / "b.npz"))["demo_x"], packed["demo_x"])
    dataset.pack(classes, str(tmp_path / "c.npz"), held, 8, 3, 1, warn=lambda m: None)
    assert not np.array_equal(dataset.load_packed(str(tmp_path / "c.npz"))["demo_x"], packed["demo_x"])
