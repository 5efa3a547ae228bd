"""TFLM as an Arduino library for arduino-cli: the sketch includes <TensorFlowLite.h> (src/model.cpp, under
ARDUINO), which arduino-cli resolves to a library whose src/ holds that header; `--library DIR` points it there.

Two ways a user has TFLM:
  * the Arduino library (Library Manager "Arduino_TensorFlowLite", or tflite-micro-arduino-examples checked out
    into ~/Arduino/libraries): TFLM_DIR= is that folder, used as it is;
  * a plain TFLM tree (create_tflm_tree.py output, or your own): the build makes a library folder around it,
    library.properties + src/TensorFlowLite.h + src/<tree's folders> as symbolic links (nothing is copied).
"""
import os

from .. import escape
from ..emit import templating
from ..emit.arduino_library import properties_text
from ..fsutil import atomic_open, write_if_changed
from .library import check_tree

LIBRARY_NAME = "Arduino_TensorFlowLite"
ANCHOR_HEADER = "TensorFlowLite.h"
_PROPERTIES = {
    "version": "0.0.0",
    "author": "The TensorFlow Authors (TensorFlow Lite Micro, Apache-2.0); wrapped by tinyml-scons",
    "maintainer": "you",
    "sentence": "TensorFlow Lite Micro from {root}",
    "paragraph": "Made by the build around TFLM_DIR so that arduino-cli can compile the TFLM sketch against it.",
    "category": "Data Processing",
    "url": "https://github.com/tensorflow/tflite-micro",
    "architectures": "*",
    "precompiled": "false",
}


def existing_library(tflm_dir):
    """The Arduino library folder TFLM_DIR already is (library.properties beside src/), else None."""
    root = check_tree(tflm_dir)
    parent = os.path.dirname(root) if os.path.basename(root) == "src" else None
    if parent and os.path.isfile(os.path.join(parent, "library.properties")) \
            and os.path.isfile(os.path.join(root, ANCHOR_HEADER)):
        return parent
    return None


def make_library(tflm_dir, out_dir):
    """Writes the library folder out_dir/<LIBRARY_NAME> around a plain tree; returns its path."""
    root = check_tree(tflm_dir)
    lib = os.path.join(os.path.abspath(out_dir), LIBRARY_NAME)
    src = os.path.join(lib, "src")
    os.makedirs(src, exist_ok=True)
    fields = {"name": LIBRARY_NAME, **_PROPERTIES,
              "sentence": escape.properties_value(_PROPERTIES["sentence"].format(root=root))}
    write_if_changed(os.path.join(lib, "library.properties"), properties_text(fields))
    write_if_changed(os.path.join(src, ANCHOR_HEADER), templating.render("tflm_library/TensorFlowLite.h.j2"))
    wanted = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith("."))
    for name in wanted:
        link = os.path.join(src, name)
        target = os.path.join(root, name)
        if os.path.islink(link) and os.readlink(link) == target:
            continue
        if os.path.lexists(link):
            os.remove(link)
        os.symlink(target, link)
    with atomic_open(os.path.join(lib, ".tinyml-scons-tree")) as f:
        f.write(root + "\n")
    return lib


def library_for(tflm_dir, out_dir):
    """The folder to hand to `arduino-cli compile --library`."""
    return existing_library(tflm_dir) or make_library(tflm_dir, out_dir)
