"""Image loading shared by dataset packing and bin2c, so that training and the embedded test images see the
exact same pixels for the same file (stretch to the model size, bilinear, like Keras'
`image_dataset_from_directory`, which does not keep the aspect ratio either)."""
import os

from ..errors import PipelineError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


def is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not os.path.basename(name).startswith(".")


def load_image(path, size, channels):
    """Returns a uint8 array (height, width, channels) or raises PipelineError naming the file.

    `size`: the side of a square model input, or (height, width)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    height, width = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    try:
        with Image.open(path) as im:
            mode = "L" if channels == 1 else "RGB"
            # JPEG can decode at a reduced scale: a 10000x10000 photo then costs what a small one does.
            im.draft(mode, (width * 2, height * 2))
            im.load()
            # `reducing_gap=None` and plain BILINEAR: a deterministic stretch of the whole image.
            im = im.convert(mode).resize((width, height), Image.BILINEAR)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise PipelineError(f"{path}: not a readable image ({e}); replace or remove the file") from None
    arr = np.asarray(im, dtype=np.uint8)
    return arr.reshape(height, width, channels)
