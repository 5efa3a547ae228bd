"""What a .tflite file may declare, checked on the flatbuffer before anything is allocated for it.

A model from someone else can declare anything: an input of 1x60000x60000x3 (80 GiB that a later stage would
try to allocate), a negative dimension, a buffer that lies past the end of the file, an op reading tensor 10**9.
`open_graph()` reads the file (regular files only, at most MAX_FILE_BYTES), walks every tensor, buffer and op of
the first subgraph and raises ModelError naming the file, the tensor or op and the limit; every reader of a
.tflite in the pipeline (the frontend, the embed stage's model_io, ...) goes through it. Only the light `tflite`
flatbuffer package is used, imported when called.
"""
from .errors import ModelError, PipelineError
from . import inputfiles

# No single tensor of a model for a microcontroller (or a Raspberry Pi's LiteRT) comes near this; it bounds what
# a stage allocates for one (the embed stage's inputs, the reference run) on the build machine.
MAX_TENSOR_BYTES = 64 * 2**20
# All tensors together (what an interpreter may allocate for the reference run, with no reuse).
MAX_TOTAL_TENSOR_BYTES = 256 * 2**20
# The largest .tflite read at all (the biggest published MCU models are a few MB).
MAX_FILE_BYTES = 256 * 2**20
# TFLite's kernels take at most 6 dimensions (RESHAPE 8); anything longer is a damaged shape vector.
MAX_RANK = 8

# bytes per element of the TensorType codes (schema.fbs); 0 for types without a fixed size (string, ...)
ITEMSIZE = {0: 4, 1: 2, 2: 4, 3: 1, 4: 8, 5: 0, 6: 1, 7: 2, 8: 8, 9: 1, 10: 8, 11: 16, 12: 8, 13: 0, 14: 0,
            15: 4, 16: 2, 17: 1, 18: 1}


def _mib(n):
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def check_shape(path, what, shape, itemsize, limit=MAX_TENSOR_BYTES):
    """The tensor's size in bytes; ModelError for a negative dimension, too many dimensions or more than
    `limit` bytes (Python integers: a product that would overflow int32/int64 in C is just large here)."""
    shape = [int(d) for d in shape]
    if len(shape) > MAX_RANK:
        raise ModelError(f"{path}: {what} has {len(shape)} dimensions; TFLite allows at most {MAX_RANK} (damaged "
                         "file?). Re-export the model")
    if any(d < 0 for d in shape):
        raise ModelError(f"{path}: {what} has a negative dimension in its shape {shape} (damaged file?). "
                         "Re-export the model")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * max(itemsize, 1)
    if nbytes > limit:
        raise ModelError(f"{path}: {what} declares shape {shape}, {nbytes:,} bytes; the limit is {_mib(limit)} "
                         "for one tensor. Use a model with smaller inputs and layers (a model for a microcontroller "
                         "needs far less), or check that the file is the model you meant")
    return nbytes


def read_model(path, what=None):
    """The bytes of a .tflite file: a regular file of at most MAX_FILE_BYTES with the TFL3 identifier."""
    what = what or str(path)
    try:
        buf = inputfiles.read_bounded(path, MAX_FILE_BYTES, what, "a model for a microcontroller is far smaller; "
                                      "check that this is the .tflite you meant")
    except ModelError:
        raise
    except PipelineError as e:
        raise ModelError(str(e)) from None
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise ModelError(f"{what}: not a TensorFlow Lite flatbuffer (no 'TFL3' identifier). Pass the .tflite file "
                         "written by tf.lite.TFLiteConverter")
    return buf


def check_graph(path, buf):
    """(tflite module, model, first subgraph) of flatbuffer `buf`, every tensor, buffer and op index checked;
    ModelError (naming `path`) for anything out of bounds or a flatbuffer too damaged to walk."""
    import tflite

    try:
        model = tflite.Model.GetRootAsModel(buf, 0)
        if model.SubgraphsLength() < 1:
            raise ModelError(f"{path}: the model has no subgraph")
        graph = model.Subgraphs(0)
        n_buffers, n_tensors, n_codes = model.BuffersLength(), graph.TensorsLength(), model.OperatorCodesLength()
        for i in range(n_buffers):
            b = model.Buffers(i)
            if b.Offset() > 1 and b.Offset() + b.Size() > len(buf):
                raise ModelError(f"{path}: buffer {i} lies beyond the end of the file (truncated file?)")
            if b.Offset() <= 1 and b.DataLength() > len(buf):
                raise ModelError(f"{path}: buffer {i} claims {b.DataLength():,} bytes in a {len(buf):,}-byte file "
                                 "(damaged file?)")
        for i in range(n_codes):     # every field the readers use, read once here: damage shows up now
            code = model.OperatorCodes(i)
            code.BuiltinCode(), code.DeprecatedBuiltinCode(), code.CustomCode(), code.Version()
        total = 0
        for i in range(n_tensors):
            t = graph.Tensors(i)
            name = tensor_name(t, i)
            q = t.Quantization()
            if q is not None:
                for n, get in ((q.ScaleLength(), q.ScaleAsNumpy), (q.ZeroPointLength(), q.ZeroPointAsNumpy)):
                    if n:
                        get()
                q.QuantizedDimension()
            shape = t.ShapeAsNumpy().tolist() if t.ShapeLength() else []
            total += check_shape(path, f"tensor {name!r} (#{i})", shape, ITEMSIZE.get(t.Type(), 1))
            if total > MAX_TOTAL_TENSOR_BYTES:
                raise ModelError(f"{path}: its tensors up to {name!r} (#{i}) take {total:,} bytes together; the "
                                 f"limit is {_mib(MAX_TOTAL_TENSOR_BYTES)} for a whole model. Use a smaller model, "
                                 "or check that the file is the model you meant")
            if t.ShapeSignatureLength():
                sig = t.ShapeSignatureAsNumpy().tolist()
                if len(sig) > MAX_RANK or any(d < -1 for d in sig):
                    raise ModelError(f"{path}: tensor {name!r} (#{i}) has an invalid shape signature {sig} "
                                     "(damaged file?). Re-export the model")
            if not 0 <= t.Buffer() < max(n_buffers, 1):
                raise ModelError(f"{path}: tensor {name!r} (#{i}) refers to buffer {t.Buffer()}, but the file has "
                                 f"{n_buffers} buffers (damaged file?). Re-export the model")
        for i in range(graph.OperatorsLength()):
            op = graph.Operators(i)
            if not 0 <= op.OpcodeIndex() < n_codes:
                raise ModelError(f"{path}: op #{i} uses operator code {op.OpcodeIndex()}, but the file has {n_codes} "
                                 "(damaged file?). Re-export the model")
            for role, ids in (("input", op.InputsAsNumpy() if op.InputsLength() else []),
                              ("output", op.OutputsAsNumpy() if op.OutputsLength() else [])):
                for k in ids:
                    if not -1 <= int(k) < n_tensors or (role == "output" and int(k) < 0):
                        raise ModelError(f"{path}: op #{i} has {role} tensor {int(k)}, but the graph has {n_tensors} "
                                         "tensors (damaged file?). Re-export the model")
        for role, ids in (("input", graph.InputsAsNumpy() if graph.InputsLength() else []),
                          ("output", graph.OutputsAsNumpy() if graph.OutputsLength() else [])):
            if len(ids) == 0:
                raise ModelError(f"{path}: the graph has no {role} (damaged file?). Re-export the model")
            for k in ids:
                if not 0 <= int(k) < n_tensors:
                    raise ModelError(f"{path}: the graph's {role} is tensor {int(k)}, but it has {n_tensors} tensors "
                                     "(damaged file?). Re-export the model")
    except ModelError:
        raise
    except Exception as e:  # noqa: BLE001 - flatbuffers raise struct/index/unicode errors on damaged files
        raise ModelError(f"{path}: the flatbuffer is damaged or truncated ({type(e).__name__}: {e}). "
                         "Re-export the model") from None
    return tflite, model, graph


def tensor_name(t, index):
    """A tensor's name as text; a tensor may have none (the schema's name is optional): then `tensor<index>`."""
    return (t.Name() or b"").decode(errors="replace") or "tensor%d" % index


def open_graph(path):
    """read_model + check_graph: (buf, tflite module, model, first subgraph)."""
    buf = read_model(path)
    return (buf, *check_graph(path, buf))
