"""Images as a photo viewer shows them, hidden files skipped, a stratified split (issue 11, item 5).
In-process and fast: the library functions the dataset and images stages call."""
import warnings

import numpy as np
from PIL import Image

from codegen.stages import dataset
from codegen.modelio.images import load_image


def test_16_bit_png_keeps_its_contrast(tmp_path):
    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)     # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "deep.png")
    px = load_image(tmp_path / "deep.png", 8, 1)
    assert 0 < px.min() < 64 and 192 < px.max() < 255               # was all 255: convert("L") clips
    assert np.all(np.diff(px.ravel().astype(int)) >= -1)             # still a ramp
    rgb = load_image(tmp_path / "deep.png", 8, 3)
    assert rgb.shape == (8, 8, 3) and rgb[..., 0].max() < 255


def test_palette_with_alpha_cmyk_and_exif_orientation(tmp_path):
    pal = Image.new("P", (10, 10))
    pal.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    pal.save(tmp_path / "pal.png", transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")                               # no "Palette images with Transparency"
        assert tuple(load_image(tmp_path / "pal.png", 4, 3)[0, 0]) == (255, 0, 0)
    Image.new("CMYK", (10, 10), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    r, g, b = load_image(tmp_path / "cmyk.jpg", 4, 3)[0, 0]
    assert r > 200 and g < 60 and b < 60
    # A landscape file whose EXIF says "rotate 90° clockwise": shown as a portrait, its left half on top.
    im = Image.new("RGB", (40, 20), (255, 0, 0))
    im.paste((0, 0, 255), (0, 0, 20, 20))
    exif = im.getexif()
    exif[0x0112] = 6
    im.save(tmp_path / "phone.jpg", exif=exif, quality=95)
    px = load_image(tmp_path / "phone.jpg", (40, 20), 3)
    assert px.shape == (40, 20, 3)
    assert px[5, 10, 2] > 200 and px[35, 10, 0] > 200                # blue on top, red below


def test_hidden_files_and_folders_are_not_training_data(tmp_path):
    rng = np.random.RandomState(0)
    for rel in ("cars/a.png", "cars/b.png", "cars/.thumbnails/t.png", "cars/.hidden.png", "cars/._a.png",
                "cars/__MACOSX/x.png", "other/c.png", "other/d.png", ".trash/e.png", "other/sub/f.png"):
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.randint(0, 255, (8, 8, 3), dtype=np.uint8)).save(path)
    classes = dataset.list_class_folder(str(tmp_path))
    assert sorted(classes) == ["cars", "other"]
    assert [p.split("/")[-1] for p in classes["cars"]] == ["a.png", "b.png"]
    assert sorted(p.split("/")[-1] for p in classes["other"]) == ["c.png", "d.png", "f.png"]


def test_split_is_stratified_and_small_classes_are_warned_about(tmp_path):
    rng = np.random.RandomState(0)
    classes = {}
    for cls, n in (("rare", 3), ("common", 300)):
        (tmp_path / cls).mkdir()
        classes[cls] = []
        for i in range(n):
            path = tmp_path / cls / f"{i:03d}.png"
            Image.fromarray(rng.randint(0, 255, (4, 4, 3), dtype=np.uint8)).save(path)
            classes[cls].append(str(path))
    warned = []
    held = {c: str(tmp_path / f"held_{c}.png") for c in classes}
    info = dataset.pack(classes, str(tmp_path / "d.npz"), held, 4, 3, 0, warn=warned.append)
    data = dataset.load_packed(str(tmp_path / "d.npz"))
    rare = data["class_names"].tolist().index("rare")
    y, is_val = data["y"], data["is_val"]
    assert (is_val & (y == rare)).sum() == 1 and (~is_val & (y == rare)).sum() == 1
    assert abs(info["val"] - 0.2 * info["count"]) <= 2
    assert len(warned) == 1 and "rare (2 image(s)" in warned[0] and "fewer than 10" in warned[0]
    # The same seed gives the same split.
    dataset.pack(classes, str(tmp_path / "e.npz"), held, 4, 3, 0, warn=warned.append)
    assert np.array_equal(dataset.load_packed(str(tmp_path / "e.npz"))["is_val"], is_val)
