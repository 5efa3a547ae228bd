"""The report's matplotlib figures: what each shows (axes, legends, counts, bars), that their PNGs are
byte-reproducible, and, through scons, that the build writes, declares and lists them."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from helpers import ROOT, built_stages, run_scons

from codegen import plots
from codegen.stages import report

HISTORY = {"loss": [1.2, 0.9, 0.7, 0.65, 0.6], "val_loss": [1.3, 1.0, 0.9, 0.85, 0.88],
           "accuracy": [0.5, 0.6, 0.7, 0.75, 0.8], "val_accuracy": [0.45, 0.55, 0.6, 0.62, 0.61]}


def _memory_report(layers=4):
    rows = [{"index": i, "type": "CONV_2D" if i % 2 else "DEPTHWISE_CONV_2D", "output_shape": [1, 4, 4, 8],
             "params_bytes": 100 * (i + 1), "activation_bytes": 128 + 16 * i, "input_bytes": 64 * (i + 1),
             "macs": 1000} for i in range(layers)]
    rows.append({"index": None, "type": "(constants not attributed to a layer)", "output_shape": [],
                 "params_bytes": 7, "activation_bytes": 0, "input_bytes": 0, "macs": 0})
    return {"board": {"title": "Test Board", "flash_bytes": 100_000, "ram_bytes": 20_000},
            "model_name": "default", "constants_bytes": 1007, "ram_workspace_bytes": 400,
            "flash": {"total": 5000, "percent": 5.0}, "ram": {"total": 3000, "percent": 15.0}, "layers": rows}


def _png_info(path):
    with Image.open(path) as im:
        im.verify()         # a truncated or non-PNG file raises here
    with Image.open(path) as im:
        return im.format, im.size, dict(im.info)


def test_training_curves_have_labelled_axes_integer_epochs_and_a_legend():
    fig = plots.training_curves_figure(HISTORY)
    loss_ax, acc_ax = fig.axes
    for ax, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        assert ax.get_xlabel() == "epoch" and metric in ax.get_ylabel()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "validation"]
        train_line, val_line = ax.get_lines()
        assert list(train_line.get_xdata()) == [1, 2, 3, 4, 5]
        assert list(train_line.get_ydata()) == HISTORY[metric]
        assert list(val_line.get_ydata()) == HISTORY["val_" + metric]
        ticks = [t for t in ax.get_xticks() if 1 <= t <= 5]
        assert len(ticks) >= 2 and all(float(t).is_integer() for t in ticks)   # more than one x label
        assert len([t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= ax.get_ylim()[1]]) >= 3


def test_confusion_figure_labels_every_cell_with_its_count_and_the_axes_with_class_names():
    classes = ["cat", "dog", "car"]
    float_m, int8_m = [[5, 1, 0], [2, 7, 1], [0, 0, 9]], [[4, 2, 0], [2, 6, 2], [1, 0, 8]]
    fig = plots.confusion_figure([("float", float_m), ("int8", int8_m)], classes)
    for ax, matrix in zip(fig.axes, (float_m, int8_m)):
        cells = {(round(t.get_position()[1]), round(t.get_position()[0])): int(t.get_text()) for t in ax.texts}
        assert cells == {(i, j): matrix[i][j] for i in range(3) for j in range(3)}
        assert [t.get_text() for t in ax.get_xticklabels()] == classes
        assert [t.get_text() for t in ax.get_yticklabels()] == classes
        assert ax.get_xlabel() == "predicted class" and ax.get_ylabel() == "true class"
        assert f"{int(np.trace(matrix))}/{int(np.sum(matrix))} correct" in ax.get_title()


def test_confusion_matrix_counts_true_rows_against_predicted_columns():
    m = report.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 3)
    assert m.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_memory_figure_has_one_flash_and_one_ram_bar_per_layer():
    rep = _memory_report()
    fig = plots.memory_layers_figure(rep)
    flash_ax, ram_ax = fig.axes
    layers = [r for r in rep["layers"] if r["index"] is not None]
    assert [p.get_width() for p in flash_ax.patches] == [r["params_bytes"] for r in layers]
    assert [p.get_width() for p in ram_ax.patches] == [r["input_bytes"] + r["activation_bytes"] for r in layers]
    assert [t.get_text() for t in flash_ax.get_yticklabels()] == [f"{r['index']} {r['type']}" for r in layers]
    assert flash_ax.get_xlabel() == ram_ax.get_xlabel() == "bytes"
    assert "100,000" in fig.get_suptitle() and "20,000" in fig.get_suptitle()


_DRAW_ALL = """
import json, sys
sys.path.insert(0, {root!r})
from codegen import plots
history, memory, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
plots.save_png(plots.training_curves_figure(history, title="t"), out + "/curve.png")
plots.save_png(plots.confusion_figure([("a", [[1, 2], [3, 4]])], ["x", "y"]), out + "/confusion.png")
plots.save_png(plots.memory_layers_figure(memory), out + "/memory.png")
"""


def test_pngs_are_byte_reproducible_and_ignore_a_users_matplotlibrc(tmp_path):
    rc = tmp_path / "matplotlibrc"
    rc.write_text("font.size: 20\naxes.facecolor: yellow\nlines.linewidth: 5\nsavefig.dpi: 300\n")
    outs = []
    for i, extra in enumerate(({}, {"MATPLOTLIBRC": str(rc), "MPLCONFIGDIR": str(tmp_path / "cfg")})):
        out = tmp_path / f"run{i}"
        out.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in ("MATPLOTLIBRC", "MPLBACKEND")}
        subprocess.run([sys.executable, "-c", _DRAW_ALL.format(root=ROOT), json.dumps(HISTORY),
                        json.dumps(_memory_report()), str(out)], check=True, env={**env, **extra}, timeout=120)
        outs.append(out)
    for name in ("curve.png", "confusion.png", "memory.png"):
        first, second = (o / name for o in outs)
        assert first.read_bytes() == second.read_bytes(), name
        fmt, size, info = _png_info(first)
        assert fmt == "PNG" and "Software" not in info     # the matplotlib version would change the bytes
        assert 300 <= size[0] <= 2000 and 200 <= size[1] <= 2000


@pytest.mark.heavy
def test_build_writes_declares_and_lists_the_plots(tiny_build, tmp_path):
    build, proc = tiny_build
    out = build / "nano33ble"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["plots"] == {"training_curve": "training_curve.png", "confusion_matrix": "confusion_matrix.png"}
    assert "plots: " in proc.stdout and str(out / "confusion_matrix.png") in proc.stdout.replace("//", "/")
    for name in ("training_curve.png", "confusion_matrix.png", "memory_layers.png"):
        fmt, (w, h), _ = _png_info(out / name)
        assert fmt == "PNG" and w >= 400 and h >= 250 and (out / name).stat().st_size > 5000, name

    # The confusion matrices are metrics.json's numbers, and the PNG is drawn from exactly those numbers.
    n = metrics["val_images"]
    for key, accuracy in (("float_confusion", "float_val_accuracy"), ("quantized_confusion", "quantized_val_accuracy")):
        matrix = np.array(metrics[key])
        assert matrix.shape == (len(metrics["classes"]),) * 2 and matrix.sum() == n > 0
        assert np.trace(matrix) == round(metrics[accuracy] * n)
    report.draw_confusion(metrics, tmp_path / "confusion.png")
    assert (tmp_path / "confusion.png").read_bytes() == (out / "confusion_matrix.png").read_bytes()
    plots.save_png(plots.memory_layers_figure(json.loads((out / "memory.json").read_text())), tmp_path / "m.png")
    assert (tmp_path / "m.png").read_bytes() == (out / "memory_layers.png").read_bytes()

    # A second build elsewhere makes the same bytes (what a shared CACHE_DIR relies on) ...
    other = tmp_path / "other"
    run_scons(other, "report", "memory")
    for name in ("training_curve.png", "confusion_matrix.png", "memory_layers.png"):
        assert (other / "nano33ble" / name).read_bytes() == (out / name).read_bytes(), name
    # ... and a deleted plot is a declared target: the next run puts it back (from the record of finished
    # targets, tinyml_state) without training again; a file no emitter declared would stay missing.
    (other / "nano33ble" / "confusion_matrix.png").unlink()
    (other / "nano33ble" / "memory_layers.png").unlink()
    again = run_scons(other, "report", "memory")
    assert "Training" not in built_stages(again.stdout)
    for name in ("confusion_matrix.png", "memory_layers.png"):
        assert (other / "nano33ble" / name).read_bytes() == (out / name).read_bytes(), name
