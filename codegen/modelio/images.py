"""Image loading shared by dataset packing and bin2c, so that training and the embedded test images see the
exact same pixels for the same file (stretch to the model size, bilinear, like Keras'
`image_dataset_from_directory`, which does not keep the aspect ratio either)."""
import os

from ..errors import PipelineError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not is_hidden(os.path.basename(name))


def is_hidden(name):
    """Files and folders a file manager hides or an OS adds: `.thumbnails/`, `._photo.jpg` (macOS resource
    forks), `__MACOSX/` from zip archives. Never training data."""
    return name.startswith(".") or name == "__MACOSX"


def open_as(im, mode):
    """`im` (a just-opened Pillow image of any mode Pillow reads) as an 8-bit image in `mode` ("L" or "RGB"),
    as a photo viewer shows it: EXIF orientation applied (phones store portraits sideways), 16- and 32-bit
    samples scaled to 8 bits (Pillow's convert clips them: a 16-bit PNG became all white), transparency
    dropped like TensorFlow's decoders do (no warning for palette images with a transparent index), CMYK and
    YCbCr through Pillow's conversion."""
    import numpy as np
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im)
    if im.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") or (im.mode == "I" and arr.max(initial=0) > 255) else 255.0
        if im.mode == "F":
            top = 1.0 if arr.max(initial=0) <= 1.0 else 255.0
        im = Image.fromarray(np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8), "L")
    elif im.mode == "P":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA").convert("RGB") if mode == "RGB" else im.convert("LA").convert("L")
    return im.convert(mode)


def load_image(path, size, channels):
    """Returns a uint8 array (height, width, channels) or raises PipelineError naming the file.

    `size`: the side of a square model input, or (height, width)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    from ..inputfiles import open_regular

    try:
        # A FIFO, socket or device named .png is refused here instead of blocking the build (open_regular).
        with open_regular(path) as f, Image.open(f) as im:
            mode = "L" if channels == 1 else "RGB"
            # JPEG can decode at a reduced scale: a 10000x10000 photo then costs what a small one does.
            im.draft(mode, (width * 2, height * 2))
            im.load()
            # `reducing_gap=None` and plain BILINEAR: a deterministic stretch of the whole image.
            im = open_as(im, mode).resize((width, height), Image.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise PipelineError(f"{path}: not a readable image ({e}); replace or remove the file") from None
    arr = np.asarray(im, dtype=np.uint8)
    return arr.reshape(height, width, channels)
