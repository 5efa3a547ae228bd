"""Train, quantize and report stages on a tiny dataset, called as a library (no SCons)."""
import json

import numpy as np
import pytest

from codegen.stages import dataset

from codegen.stages import quantize

from codegen.stages import report

from codegen.stages import train
from codegen.errors import PipelineError
from codegen.modelio.quantio import input_quantization

pytestmark = pytest.mark.heavy


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("train")
    idx = d / "synth" / "index.json"
    dataset.generate_synthetic(str(d / "synth"), 10, 0, str(idx))
    classes = dataset.index_classes(str(idx))
    dataset.pack(classes, str(d / "data.npz"), {c: str(d / f"{c}.png") for c in classes}, 32, 3, 0)
    acc = train.train(str(d / "data.npz"), str(d / "model.keras"), str(d / "hist.json"), alpha=0.25, epochs=1,
                      seed=0, batch=8, verbose=0)
    return d, acc


def test_train_saves_a_batch1_model_and_history(trained):
    d, acc = trained
    import keras

    model = keras.models.load_model(d / "model.keras", compile=False)
    assert tuple(model.inputs[0].shape) == (1, 32, 32, 3)     # fixed batch for a static TFLite graph
    assert model.outputs[0].shape[-1] == 2
    hist = json.loads((d / "hist.json").read_text())
    assert len(hist["history"]["loss"]) == 1 and hist["float_val_accuracy"] == acc
    assert hist["classes"] == ["random", "target"]


@pytest.mark.parametrize("mode,io,in_dtype", [("int8", "uint8", "uint8"), ("int8", "int8", "int8"),
                                             ("float16", "uint8", "float32"), ("dynamic", "uint8", "float32")])
def test_quantize_modes(trained, mode, io, in_dtype):
    d, _ = trained
    out = d / f"m_{mode}_{io}.tflite"
    size = quantize.quantize(str(d / "model.keras"), str(d / "data.npz"), str(out), mode=mode, io_type=io,
                             rep_samples=4)
    assert out.stat().st_size == size > 1000
    dtype, scale, zp, shape = input_quantization(str(out))
    assert dtype == in_dtype and shape == [1, 32, 32, 3]
    if mode == "int8":
        assert scale > 0


def test_quantization_is_deterministic(trained):
    d, _ = trained
    a, b = d / "a.tflite", d / "b.tflite"
    for p in (a, b):
        quantize.quantize(str(d / "model.keras"), str(d / "data.npz"), str(p), rep_samples=4)
    assert a.read_bytes() == b.read_bytes()


def test_report_has_float_and_int8_accuracy_and_a_curve(trained):
    d, acc = trained
    quantize.quantize(str(d / "model.keras"), str(d / "data.npz"), str(d / "r.tflite"), rep_samples=4)
    m = report.evaluate(str(d / "r.tflite"), str(d / "data.npz"), str(d / "hist.json"), str(d / "metrics.json"),
                        str(d / "curve.png"), str(d / "confusion.png"))
    assert m["float_val_accuracy"] == acc and 0 <= m["quantized_val_accuracy"] <= 1
    for key, accuracy in (("quantized_confusion", m["quantized_val_accuracy"]), ("float_confusion", acc)):
        matrix = np.array(m[key])
        assert matrix.sum() == m["val_images"] > 0 and np.trace(matrix) == round(accuracy * m["val_images"])
    assert m["plots"] == {"training_curve": "curve.png", "confusion_matrix": "confusion.png"}
    from PIL import Image
    assert Image.open(d / "curve.png").size == (800, 360) and Image.open(d / "confusion.png").format == "PNG"


def test_report_of_a_history_without_recorded_predictions_evaluates_the_keras_model(trained):
    """A train_history.json from before the predictions were recorded (e.g. from a shared cache): the report
    runs the float model.keras itself instead of leaving the float confusion matrix out."""
    d, acc = trained
    quantize.quantize(str(d / "model.keras"), str(d / "data.npz"), str(d / "old.tflite"), rep_samples=4)
    hist = json.loads((d / "hist.json").read_text())
    recorded = report.confusion_matrix(np.load(d / "data.npz")["y"][np.load(d / "data.npz")["is_val"]],
                                       hist.pop("float_val_predictions"), len(hist["classes"]))
    (d / "old_hist.json").write_text(json.dumps(hist))
    m = report.evaluate(str(d / "old.tflite"), str(d / "data.npz"), str(d / "old_hist.json"),
                        str(d / "old_metrics.json"), str(d / "old_curve.png"), keras_path=str(d / "model.keras"))
    evaluated = np.array(m["float_confusion"])
    assert evaluated.sum() == m["val_images"]
    # batch 1 here, batch 8 in training: at most one near-tie may round the other way
    assert np.abs(evaluated - recorded).sum() <= 2
    assert "confusion_matrix" not in m["plots"]


def test_weights_file_transfer_and_wrong_architecture(trained, tmp_path):
    d, _ = trained
    from codegen.modelio.tf_env import import_tf

    _, keras = import_tf()
    base = keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, include_top=False)
    base.save_weights(str(tmp_path / "base.weights.h5"))
    model = train.build_model(32, 3, 0.25, 2, weights_path=str(tmp_path / "base.weights.h5"))
    conv1 = model.get_layer("mobilenet_features").get_layer("conv1")
    assert np.array_equal(conv1.get_weights()[0], base.get_layer("conv1").get_weights()[0])
    with pytest.raises(PipelineError, match="cannot load into MobileNetV1 alpha=0.5"):
        train.build_model(32, 3, 0.5, 2, weights_path=str(tmp_path / "base.weights.h5"))
