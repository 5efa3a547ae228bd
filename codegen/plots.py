"""The report's figures, drawn with matplotlib: training curves, confusion matrices, per-layer memory bars, the
per-layer Cortex-M4 profile.

Each `*_figure` function returns a matplotlib Figure (tests read its axes and texts); `save_png` writes one.
Figures are made with matplotlib's object API (Figure + the Agg canvas), never pyplot: no global figure
manager, no GUI backend, nothing shared between two stages that plot at once under `scons -j2`.

PNGs must be byte-reproducible so that a shared CACHE_DIR and `scons` no-op checks see the same file for the
same inputs: matplotlib's built-in style (a user's matplotlibrc is ignored), its bundled DejaVu Sans font, a
fixed size and dpi, and no "Software" metadata (it carries the matplotlib version).
"""
import contextlib

from . import escape
from .fsutil import atomic_path

DPI = 100
TRAIN_COLOR, VAL_COLOR = "tab:blue", "tab:orange"


@contextlib.contextmanager
def _style():
    import matplotlib.style

    # rc values are read both when artists are made and when the figure is saved (savefig.*): both run inside.
    # text.parse_math off: class names and board titles are user text, and "$...$" in one would be parsed as
    # mathtext (a "$\\frac$" class folder crashed the report stage with a parse error).
    with matplotlib.style.context("default"), matplotlib.rc_context({"font.family": "DejaVu Sans", "font.size": 9,
                                                                     "text.parse_math": False}):
        yield


def _new_figure(width_in, height_in):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, out_png):
    """Writes `fig` atomically; the bytes depend only on what was drawn."""
    with _style(), atomic_path(out_png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, metadata={"Software": None})


def training_curves_figure(history, title=None):
    """Loss and accuracy per epoch (Keras' history dict), train and validation, in two panels."""
    from matplotlib.ticker import MaxNLocator

    with _style():
        fig = _new_figure(8.0, 3.6)
        axes = fig.subplots(1, 2)
        for ax, metric, label in ((axes[0], "loss", "loss (cross-entropy)"), (axes[1], "accuracy", "accuracy")):
            for key, name, color in ((metric, "train", TRAIN_COLOR), ("val_" + metric, "validation", VAL_COLOR)):
                values = history.get(key) or []
                if values:
                    ax.plot(range(1, len(values) + 1), values, marker="o", markersize=3, color=color, label=name)
            ax.set_xlabel("epoch")
            ax.set_ylabel(label)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(True, alpha=0.3)
            if metric == "accuracy":
                ax.set_ylim(-0.02, 1.02)
            elif ax.lines:
                ax.set_ylim(bottom=0)
            if ax.lines:
                ax.legend(loc="best")
        if title:
            fig.suptitle(title)
        return fig


def confusion_figure(panels, class_names):
    """One confusion matrix per (title, matrix) panel: rows are the true class, columns the predicted one,
    each cell labelled with its count."""
    import numpy as np

    n = len(class_names)
    class_names = [escape.display_text(c) for c in class_names]    # user text: one line, no byte a font refuses
    side = max(3.2, 0.55 * n + 1.6)         # room for the class names of a DATA= set with many classes
    with _style():
        fig = _new_figure(side * len(panels), side)
        axes = fig.subplots(1, len(panels), squeeze=False)[0]
        for ax, (title, matrix) in zip(axes, panels):
            m = np.asarray(matrix, dtype=int).reshape(n, n)
            ax.imshow(m, cmap="Blues", vmin=0, vmax=max(1, int(m.max())), interpolation="nearest")
            ax.set_xticks(range(n), labels=class_names, rotation=45 if n > 3 else 0,
                          ha="right" if n > 3 else "center")
            ax.set_yticks(range(n), labels=class_names)
            ax.set_xlabel("predicted class")
            ax.set_ylabel("true class")
            total = int(m.sum())
            correct = int(np.trace(m))
            ax.set_title(f"{title}\n{correct}/{total} correct" + (f" ({100.0 * correct / total:.1f}%)" if total else ""))
            threshold = m.max() / 2.0
            for i in range(n):
                for j in range(n):
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                            color="white" if m[i, j] > threshold else "black")
        return fig


def memory_layers_figure(report):
    """Per-layer flash (constant data each kernel reads) and RAM (its input + output tensors) as horizontal
    bars from a memory report (codegen.device.memreport), with the model's totals against the board's."""
    from matplotlib.ticker import FuncFormatter

    rows = [r for r in report["layers"] if r["index"] is not None]
    labels = [f"{r['index']} {r['type']}" for r in rows]
    flash = [r["params_bytes"] for r in rows]
    ram = [r["input_bytes"] + r["activation_bytes"] for r in rows]
    board = report["board"]
    with _style():
        fig = _new_figure(9.0, max(2.5, 0.22 * len(rows) + 1.4))
        axes = fig.subplots(1, 2, sharey=True)
        positions = range(len(rows))
        axes[0].barh(positions, flash, color="tab:green")
        axes[0].set_title("flash: constant data (weights) per layer")
        axes[1].barh(positions, ram, color="tab:purple")
        axes[1].axvline(report["ram_workspace_bytes"], color="black", linestyle="--", linewidth=1,
                        label=f"workspace (reused) {report['ram_workspace_bytes']:,} B")
        axes[1].set_title("RAM: layer input + output tensors")
        axes[1].legend(loc="lower right")
        axes[0].set_yticks(list(positions), labels=labels)
        axes[0].invert_yaxis()          # first layer on top, as in memory.txt
        for ax in axes:
            ax.set_xlabel("bytes")
            ax.grid(True, axis="x", alpha=0.3)
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        flash_total, ram_total = report["flash"], report["ram"]
        title = escape.display_text(board["title"])
        fig.suptitle(f"{title}\nflash {flash_total['total']:,} of {board['flash_bytes']:,} B "
                     f"({flash_total['percent']}%), RAM {ram_total['total']:,} of {board['ram_bytes']:,} B "
                     f"({ram_total['percent']}%), core margins included")
        return fig


def profile_figure(report):
    """Per-layer cost on the Cortex-M4 from a profile report (codegen.runners.profile): instructions and estimated
    cycles per kernel call as horizontal bars, with instructions per MAC beside them and each call's share."""
    from matplotlib.ticker import FuncFormatter

    rows = report["layers"]
    labels = [r["layer"] if r["index"] is None else f"{r['index']} {r['layer']}" for r in rows]
    positions = list(range(len(rows)))
    with _style():
        fig = _new_figure(10.0, max(2.5, 0.22 * len(rows) + 1.6))
        axes = fig.subplots(1, 2, sharey=True, width_ratios=[3, 1])
        height = 0.4
        axes[0].barh([p - height / 2 for p in positions], [r["instructions"] for r in rows], height=height,
                     color="tab:blue", label="instructions")
        axes[0].barh([p + height / 2 for p in positions], [r["cycles_estimate"] for r in rows], height=height,
                     color="tab:orange", label="cycles (estimate)")
        for p, r in zip(positions, rows):
            axes[0].annotate(f"{r['share_cycles_percent']:.1f}%", (r["cycles_estimate"], p + height / 2),
                             xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
        axes[0].set_title("per kernel call (share of the estimated cycles)")
        axes[0].legend(loc="lower right")
        axes[0].xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        # a log scale: a softmax's hundreds of instructions per MAC would flatten the convolutions' 1-4
        with_macs = [(p, r["insn_per_mac"]) for p, r in zip(positions, rows) if r["insn_per_mac"]]
        if with_macs:
            axes[1].barh([p for p, _ in with_macs], [v for _, v in with_macs], color="tab:gray")
            for p, v in with_macs:
                axes[1].annotate(f"{v:.2f}", (v, p), xytext=(2, 0), textcoords="offset points", va="center",
                                 fontsize=7)
            axes[1].set_xscale("log")
        axes[1].set_title("instructions / MAC (log)")
        axes[0].set_yticks(positions, labels=labels)
        axes[0].invert_yaxis()          # first layer on top, as in profile.txt
        for ax in axes:
            ax.grid(True, axis="x", alpha=0.3)
        t = report["total"]
        ms = f", ~{t['ms_estimate']:.1f} ms at {report['clock_hz'] / 1e6:g} MHz" if t.get("ms_estimate") else ""
        fig.suptitle(f"{report['model_name']} on the Cortex-M4F (QEMU): {t['instructions']:,} instructions, "
                     f"~{t['cycles_estimate']:,} cycles (estimate){ms}")
        return fig
