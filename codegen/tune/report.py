"""What a person reads of a study: a progress line per trial, the table, the Pareto plot and tune.json.

Records are plain dicts made from Optuna's trials (`record`), so the table, the plot and `scons tune save`
work from tune.json alone.
"""
import json
import math
import os

from ..fsutil import atomic_open, atomic_path

STATE_NAMES = {"COMPLETE": "complete", "FAIL": "failed", "RUNNING": "running", "WAITING": "waiting",
               "PRUNED": "pruned"}


def record(trial):
    """A FrozenTrial as a plain dict: what the table, the plot and `scons tune save` read."""
    attrs = trial.user_attrs
    result = attrs.get("result") or {}
    probe = attrs.get("probe") or {}
    measured = result or probe
    state = STATE_NAMES.get(trial.state.name, trial.state.name.lower())
    why_not = attrs.get("why_not")
    rec = {
        "number": trial.number,
        "state": state,
        "variables": attrs.get("variables") or {},
        "build_variables": attrs.get("build_variables") or {},
        "trained": bool(result),
        "accuracy": result.get("accuracy"),
        "float_accuracy": result.get("float_accuracy"),
        "ram": measured.get("ram"),
        "ram_limit": measured.get("ram_limit"),
        "flash": measured.get("flash"),
        "flash_limit": measured.get("flash_limit"),
        "latency_ms": measured.get("latency_ms"),
        "feasible": state == "complete" and bool(result) and not why_not,
        "why_not": why_not,
        "error": attrs.get("error"),
        "retry_of": attrs.get("retry_of"),
        "worker": (attrs.get("owner") or {}).get("host"),
        "duration_s": round(trial.duration.total_seconds(), 1) if trial.duration else None,
        "trial_dir": attrs.get("trial_dir"),
    }
    return rec


def pareto_front(records):
    """Numbers of the feasible trained trials no other feasible one beats on both accuracy and latency."""
    pool = [r for r in records if r["feasible"] and r["accuracy"] is not None and r["latency_ms"] is not None]
    front = []
    for r in pool:
        dominated = any(o["accuracy"] >= r["accuracy"] and o["latency_ms"] <= r["latency_ms"]
                        and (o["accuracy"] > r["accuracy"] or o["latency_ms"] < r["latency_ms"]) for o in pool)
        if not dominated:
            front.append(r["number"])
    return sorted(front)


def chosen(records):
    """The most accurate feasible trial (the faster one on a tie): always on the front."""
    pool = [r for r in records if r["feasible"] and r["accuracy"] is not None]
    if not pool:
        return None
    return min(pool, key=lambda r: (-r["accuracy"], r["latency_ms"] if r["latency_ms"] is not None else math.inf,
                                    r["number"]))


def _kb(n):
    return "-" if n is None else f"{n / 1024:,.1f} KB"


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}%"


def _ms(x):
    return "-" if x is None else f"{x:,.1f} ms"


def outcome(r):
    if r["state"] == "failed":
        return f"failed: {r['error']}" if r["error"] else "failed (worker stopped; queued again)"
    if r["state"] in ("running", "waiting"):
        return r["state"]
    if not r["trained"]:
        return f"not trained: {r['why_not']}"
    return f"trained, but {r['why_not']}" if r["why_not"] else "fits"


def progress_line(done, total, r, best, eta_s):
    params = " ".join(f"{k}={v}" for k, v in r["variables"].items())
    if r["state"] == "complete" and r["trained"]:
        got = f"int8 {_pct(r['accuracy'])}, {_ms(r['latency_ms'])}, RAM {_kb(r['ram'])}, flash {_kb(r['flash'])}"
        if r["why_not"]:
            got += f" ({r['why_not']})"
    else:
        got = outcome(r)
    line = f"[tune {done}/{total}] trial {r['number']}: {params} -> {got}"
    line += (f" | best: trial {best['number']} {_pct(best['accuracy'])} {_ms(best['latency_ms'])}" if best
             else " | best: none fits yet")
    if eta_s is not None:
        line += f" | ETA {_duration(eta_s)}"
    return line


def _duration(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def table(records, params, front=(), best=None):
    """The study as aligned text: one row per trial, the chosen one marked `>`, the front `*`."""
    head = ["trial", *params, "int8 acc", "RAM", "flash", "latency", "result"]
    rows = []
    for r in sorted(records, key=lambda r: r["number"]):
        mark = ">" if best is not None and r["number"] == best["number"] else ("*" if r["number"] in front else " ")
        rows.append([f"{mark}{r['number']}", *[str(r["variables"].get(p, "-")) for p in params],
                     _pct(r["accuracy"]), _kb(r["ram"]), _kb(r["flash"]), _ms(r["latency_ms"]), outcome(r)])
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head) - 1)]
    lines = []
    for row in [head, *rows]:
        cells = [str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells + [row[-1]]).rstrip())
    lines.append("> chosen (most accurate that fits), * on the Pareto front (accuracy up, latency down)")
    return "\n".join(lines)


def plot(records, path, board, latency_budget=None, front=(), best=None):
    """accuracy vs latency of the trained trials, RAM as colour up to the board's RAM, the budgets drawn;
    candidates that never trained (over a budget) as grey crosses at the bottom."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    trained = [r for r in records if r["trained"] and r["latency_ms"] is not None]
    skipped = [r for r in records if r["state"] == "complete" and not r["trained"]]
    ram_limit = board.get("ram_bytes")
    if trained:
        points = ax.scatter([r["latency_ms"] for r in trained], [100 * r["accuracy"] for r in trained],
                            c=[r["ram"] for r in trained], cmap="viridis", vmin=0, vmax=ram_limit, s=60,
                            edgecolors=["red" if r["why_not"] else "black" for r in trained], zorder=3)
        bar = fig.colorbar(points, ax=ax)
        bar.set_label(f"RAM (bytes; the board has {ram_limit:,})")
        for r in trained:
            ax.annotate(str(r["number"]), (r["latency_ms"], 100 * r["accuracy"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
    on_front = sorted((r for r in trained if r["number"] in front), key=lambda r: r["latency_ms"])
    if len(on_front) > 1:
        ax.step([r["latency_ms"] for r in on_front], [100 * r["accuracy"] for r in on_front], where="post",
                color="tab:orange", lw=1.2, zorder=2, label="Pareto front")
    if best is not None and best.get("latency_ms") is not None:
        ax.scatter([best["latency_ms"]], [100 * best["accuracy"]], s=220, facecolors="none",
                   edgecolors="tab:red", lw=2, zorder=4, label=f"chosen: trial {best['number']}")
    with_latency = [r for r in skipped if r["latency_ms"] is not None]
    if with_latency:
        ax.scatter([r["latency_ms"] for r in with_latency], [0] * len(with_latency), marker="x", color="grey",
                   zorder=3, label="not trained (over a budget)")
    if latency_budget:
        ax.axvline(latency_budget, color="tab:red", ls="--", lw=1, label=f"latency budget {latency_budget:g} ms")
    ax.set_xlabel(f"latency per inference (ms at {board.get('clock_hz', 0) / 1e6:g} MHz)")
    ax.set_ylabel("int8 validation accuracy (%)")
    title = (f"{board.get('title', board['name'])}: flash {board.get('flash_bytes', 0):,} B, RAM "
             f"{ram_limit:,} B")
    not_measured = len(skipped) - len(with_latency)
    if not_measured:
        title += f"\n{not_measured} candidate(s) over flash/RAM before latency (not drawn)"
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def write_json(path, summary):
    with atomic_open(path) as f:
        json.dump(summary, f, indent=1)
    return path


def load_json(path):
    with open(path) as f:
        return json.load(f)


def shown(path):
    rel = os.path.relpath(path)
    return path if rel.startswith(os.pardir) else rel
