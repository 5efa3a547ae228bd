"""The TFLite front door: read a .tflite flatbuffer into plain Python objects and check that the code generator
can turn it into exact C (every op registered in codegen.lowering.registry, full-integer, static shapes).

    reader.py   the flatbuffer as Tensor / Op / Model objects, and every check
    fold.py     static-shape folding: SHAPE and computations on constants become constants (Keras' Flatten chains)
"""

from ..errors import ModelError
from .reader import Model, Op, Tensor, check_object_sizes, load

__all__ = ["Model", "ModelError", "Op", "Tensor", "check_object_sizes", "load"]
