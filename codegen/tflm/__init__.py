"""TensorFlow Lite Micro as a second MCU backend (BACKEND=tflm): the TFLM runtime built once per source tree and
toolchain into a cached static library, the model as an aligned C array with a generated op resolver, and the
arena sized from a measured run. TFLM itself is never part of this project: it comes from TFLM_DIR=.
"""
