"""Hand-built TFLite models for the op tests (not a test module): a one-subgraph flatbuffer writer for what the
converter never emits (uint8 tensors inside a model, unusual options, configurations that must be refused), the
inputs that exercise them, and the two checks every hand-built op test makes: bit-exact against tf.lite's reference
kernels on every tensor, or refused by the reader with one error line naming the op."""
import numpy as np

_TYPES = {"float32": 0, "int32": 2, "uint8": 3, "int64": 4, "int8": 9}


class T:
    """A tensor of a hand-built model: shape, dtype, (scale, zero point), constant data; `named=False` writes no
    name (the schema's name is optional)."""

    def __init__(self, shape, dtype, q=None, data=None, named=True):
        self.shape, self.dtype, self.q, self.named = tuple(shape), dtype, q, named
        self.data = None if data is None else np.asarray(data, dtype).reshape(shape)


def flatbuffer(tensors, ops, inputs, outputs):
    """A one-subgraph TFLite flatbuffer: `tensors` [T], `ops` [(op name, inputs, outputs, options table name or
    None, {field: value})], model `inputs` / `outputs` tensor indices."""
    import flatbuffers
    import tflite

    b = flatbuffers.Builder(4096)

    def ivec(values, dtype=np.int32):
        return b.CreateNumpyVector(np.asarray(values, dtype))

    buffers = [None]
    tensor_offs = []
    for k, t in enumerate(tensors):
        buf = 0
        if t.data is not None:
            buffers.append(np.frombuffer(t.data.tobytes(), np.uint8))
            buf = len(buffers) - 1
        q = None
        if t.q is not None:
            scale, zp = ivec([t.q[0]], np.float32), ivec([t.q[1]], np.int64)
            tflite.QuantizationParametersStart(b)
            tflite.QuantizationParametersAddScale(b, scale)
            tflite.QuantizationParametersAddZeroPoint(b, zp)
            q = tflite.QuantizationParametersEnd(b)
        name, shape = b.CreateString("t%d" % k) if t.named else None, ivec(t.shape)
        tflite.TensorStart(b)
        tflite.TensorAddShape(b, shape)
        tflite.TensorAddType(b, _TYPES[t.dtype])
        tflite.TensorAddBuffer(b, buf)
        if name is not None:
            tflite.TensorAddName(b, name)
        if q is not None:
            tflite.TensorAddQuantization(b, q)
        tensor_offs.append(tflite.TensorEnd(b))
    buffer_offs = []
    for data in buffers:
        vec = b.CreateNumpyVector(data) if data is not None else None
        tflite.BufferStart(b)
        if vec is not None:
            tflite.BufferAddData(b, vec)
        buffer_offs.append(tflite.BufferEnd(b))

    codes = sorted({op[0] for op in ops})
    code_offs = []
    for c in codes:
        num = getattr(tflite.BuiltinOperator, c)
        tflite.OperatorCodeStart(b)
        tflite.OperatorCodeAddDeprecatedBuiltinCode(b, num)
        tflite.OperatorCodeAddBuiltinCode(b, num)
        tflite.OperatorCodeAddVersion(b, 1)
        code_offs.append(tflite.OperatorCodeEnd(b))
    op_offs = []
    for name, ins, outs, table, fields in ops:
        opt = None
        if table is not None:
            vecs = {f: ivec(v) for f, v in fields.items() if isinstance(v, (list, tuple))}
            getattr(tflite, table + "Start")(b)
            for f, v in fields.items():
                getattr(tflite, "%sAdd%s" % (table, f))(b, vecs.get(f, v))
            opt = getattr(tflite, table + "End")(b)
        iv, ov = ivec(ins), ivec(outs)
        tflite.OperatorStart(b)
        tflite.OperatorAddOpcodeIndex(b, codes.index(name))
        tflite.OperatorAddInputs(b, iv)
        tflite.OperatorAddOutputs(b, ov)
        if opt is not None:
            tflite.OperatorAddBuiltinOptionsType(b, getattr(tflite.BuiltinOptions, table))
            tflite.OperatorAddBuiltinOptions(b, opt)
        op_offs.append(tflite.OperatorEnd(b))

    def table_vec(start, offs):
        start(b, len(offs))
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()

    tv = table_vec(tflite.SubGraphStartTensorsVector, tensor_offs)
    ov = table_vec(tflite.SubGraphStartOperatorsVector, op_offs)
    iv, outv = ivec(inputs), ivec(outputs)
    tflite.SubGraphStart(b)
    tflite.SubGraphAddTensors(b, tv)
    tflite.SubGraphAddOperators(b, ov)
    tflite.SubGraphAddInputs(b, iv)
    tflite.SubGraphAddOutputs(b, outv)
    sg = tflite.SubGraphEnd(b)
    sgv = table_vec(tflite.ModelStartSubgraphsVector, [sg])
    cv = table_vec(tflite.ModelStartOperatorCodesVector, code_offs)
    bv = table_vec(tflite.ModelStartBuffersVector, buffer_offs)
    desc = b.CreateString("hand-built by tests/hand_models.py")
    tflite.ModelStart(b)
    tflite.ModelAddVersion(b, 3)
    tflite.ModelAddOperatorCodes(b, cv)
    tflite.ModelAddSubgraphs(b, sgv)
    tflite.ModelAddBuffers(b, bv)
    tflite.ModelAddDescription(b, desc)
    b.Finish(tflite.ModelEnd(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def i32c(values):
    """A constant int32 tensor (axis lists, paddings, slice bounds, sizes)."""
    a = np.asarray(values, np.int32)
    return T(a.shape, "int32", data=a)


def every_value_rows(path, n, seed=0):
    """Random inputs for the model at `path`, plus rows that hold every value of its (integer) input type."""
    from codegen import frontend

    t = frontend.load(path).inputs[0]
    info = np.iinfo(t.dtype)
    rs = np.random.RandomState(seed)
    rows = rs.randint(info.min, info.max + 1, (n,) + t.shape)
    every = np.resize(np.arange(info.min, info.max + 1), (-(-256 // t.size) * t.size,)).reshape((-1,) + t.shape)
    return np.concatenate([rows, every]).astype(t.dtype)


def check_hand_built(buf, expected_ops, tmp_path, model_name, rows=30):
    """Writes the model `buf` and checks the generated C bit-exact with tf.lite on every tensor (check_exact) on
    random and every-value inputs; returns (metadata, report). The outputs must not all be equal: a model whose
    output is constant proves nothing about the op."""
    from tflite_helpers import check_exact

    path = str(tmp_path / (model_name + ".tflite"))
    with open(path, "wb") as f:
        f.write(buf)
    meta, rep = check_exact(path, every_value_rows(path, rows), tmp_path, expected_ops, model_name=model_name)
    return meta, rep


def assert_refused(buf, where, what, tmp_path, name="refused"):
    """The reader refuses the model `buf` with one error line that names the op (`where`) and says `what`."""
    import pytest

    from codegen.frontend import ModelError, reader

    p = tmp_path / (name + ".tflite")
    p.write_bytes(buf)
    with pytest.raises(ModelError) as e:
        reader.load(str(p))
    msg = str(e.value)
    assert where in msg and what in msg and "\n" not in msg, msg
