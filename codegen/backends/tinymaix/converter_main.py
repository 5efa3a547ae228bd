"""Runs TinyMaix's own converter (`python -m tools.tflite2tmdl`) from the user's checkout, in a child process.

    python converter_main.py TINYMAIX_DIR MODEL.tflite OUT.tmdl int8 0 H,W,C CLASSES

Under Keras 3 the converter's reader stops at an import it never uses (`from keras.preprocessing.image import
ImageDataGenerator`, tools/tflite_reader.py): the name is provided before the module runs, nothing else changes.
Not imported by the build (it imports TensorFlow); codegen/backends/tinymaix/convert.py starts it.
"""
import runpy
import sys


def main(argv):
    root, args = argv[1], argv[2:]
    sys.path.insert(0, root)
    try:
        import keras.preprocessing.image as keras_image
    except ImportError:
        keras_image = None
    if keras_image is not None and not hasattr(keras_image, "ImageDataGenerator"):
        keras_image.ImageDataGenerator = object
    sys.argv = ["tools.tflite2tmdl", *args]
    runpy.run_module("tools.tflite2tmdl", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv)
