"""Plots of a run (confusion matrix, learning curves) and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import Any, Sequence

from textclf import runs
from textclf.errors import RunError

CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "learning_curves.png"


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed, works in CI and over ssh
    import matplotlib.pyplot as plt

    return plt


def preload_plotting() -> None:
    """Import matplotlib in a background thread while training runs.

    The import takes ~0.45 s, pure Python, and a training loop spends most of its time in
    TensorFlow's C++ with the GIL released: started with training, the run's plots are
    drawn without waiting for it at the end (0.4 s of a 12 s n-gram run).
    """
    import threading

    threading.Thread(target=_pyplot, name="textclf-preload-matplotlib", daemon=True).start()


def confusion_matrix_png(report: dict) -> bytes:
    """A report dict's confusion matrix as a PNG (counts, rows normalised for the colour)."""
    import numpy as np

    plt = _pyplot()
    cm = np.asarray(report["confusion_matrix"])
    labels = list(report["labels"])
    k = len(labels)
    size = min(2.5 + 0.6 * k, 14)
    fig, ax = plt.subplots(figsize=(size, size * 0.85))
    rows = cm.sum(axis=1, keepdims=True)
    ax.imshow(np.divide(cm, rows, out=np.zeros(cm.shape), where=rows > 0), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), labels, rotation=45, ha="right")
    ax.set_yticks(range(k), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                share = cm[i, j] / rows[i, 0] if rows[i, 0] else 0
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if share > 0.5 else "black")
    data = str(report.get("data", ""))
    ax.set_title(f"{Path(data).name or data}: accuracy {100 * report['accuracy']:.2f}%", fontsize=10)
    return _png(fig)


def learning_curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss and accuracy per epoch, training and validation."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            values = history.get(key, [])
            if values:
                ax.plot(range(1, len(values) + 1), values, style, markersize=3,
                        label="validation" if key.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run fitted without epochs (L-BFGS) has no curves
            ax.legend()
    return _png(fig)


def _png(fig) -> bytes:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def save_run_plots(run_dir: Path, report: dict, history: dict[str, list[float]]) -> None:
    """Write the run's confusion_matrix.png and learning_curves.png (atomically)."""
    runs.write_bytes(Path(run_dir) / CONFUSION_PNG, confusion_matrix_png(report))
    runs.write_bytes(Path(run_dir) / CURVES_PNG, learning_curves_png(history))


def check_plot_path(path: str | Path) -> Path:
    """A writable .png path, or a RunError saying why not."""
    import os

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise RunError(f"--plot writes a PNG; give a path ending in .png, not {path.name!r}")
    if not path.parent.is_dir():
        raise RunError(f"cannot write {path}: folder {path.parent} does not exist")
    if not os.access(path.parent, os.W_OK):
        raise RunError(f"cannot write {path}: folder {path.parent} is not writable")
    return path


def write_plot(path: str | Path, report: dict) -> Path:
    """Write a confusion-matrix PNG for an evaluation to `path`."""
    path = check_plot_path(path)
    try:
        runs.write_bytes(path, confusion_matrix_png(report))
    except OSError as err:
        raise RunError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """{"training": {"epochs": 3}} -> {"training.epochs": 3}."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


COMPARED_METRICS = (  # (key, label, higher is better)
    ("accuracy", "accuracy", True),
    ("macro_f1", "macro-F1", True),
    ("train_examples_per_second", "train examples/s", True),
    ("duration_seconds", "duration (s)", False),
)


def compare_runs(run_dirs: Sequence[Path]) -> dict[str, Any]:
    """Config differences and metrics of complete runs side by side, with the best per metric."""
    loaded = [load_run_summary(p) for p in run_dirs]
    names = [r["name"] for r in loaded]
    if len(set(names)) < len(names):
        names = [r["path"] for r in loaded]
    flat = [flatten(r["config"]) for r in loaded]
    keys = sorted(set().union(*flat)) if flat else []
    differences = {k: [f.get(k) for f in flat] for k in keys
                   if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1}
    metrics: dict[str, list[Any]] = {}
    best: dict[str, str] = {}
    for key, _, higher in COMPARED_METRICS:
        values = [r["metrics"].get(key) for r in loaded]
        metrics[key] = values
        present = [(v, n) for v, n in zip(values, names) if isinstance(v, (int, float))]
        if len(present) > 1:
            best[key] = (max if higher else min)(present)[1]
    return {"runs": names, "paths": [r["path"] for r in loaded], "config_differences": differences,
            "metrics": metrics, "best": best}


def load_run_summary(run_dir: Path) -> dict[str, Any]:
    """run.json, config.json, metrics.json and history.json of a complete run."""
    run = runs.Run.open(run_dir)
    info = run.info
    if info.get("status") != "complete":
        raise RunError(f"run {run_dir} is not complete (status: {runs.status(info)})")
    metrics = {**run.metrics, "duration_seconds": info.get("duration_seconds")}
    return {"name": info.get("name", run.path.name), "path": str(run.path), "info": info,
            "config": run.config, "metrics": metrics, "history": run.history}


def html_report(run_dirs: Sequence[Path]) -> str:
    """One self-contained HTML page comparing runs: metrics, per-class tables, plots, configs."""
    loaded = [load_run_summary(p) for p in run_dirs]
    comparison = compare_runs(run_dirs)
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>textclf report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}.best{font-weight:bold;color:#17692b}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}img{max-width:100%}"
        "section{border-top:2px solid #ddd;margin-top:2em}",
        "</style></head><body><h1>textclf report</h1>",
        "<h2>Metrics</h2><table><tr><th>run</th><th>model</th><th>eval data</th>",
    ]
    parts += [f"<th>{e(label)}</th>" for _, label, _ in COMPARED_METRICS]
    parts.append("</tr>")
    for i, run in enumerate(loaded):
        name = comparison["runs"][i]
        parts.append(f"<tr><td><a href='#run-{i}'>{e(name)}</a></td><td>{e(str(run['info'].get('model', '')))}</td>"
                     f"<td>{e(str(run['metrics'].get('data', '')))}</td>")
        for key, _, _ in COMPARED_METRICS:
            cls = " class='best'" if comparison["best"].get(key) == name else ""
            parts.append(f"<td{cls}>{e(format_metric(key, run['metrics'].get(key)))}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    if comparison["config_differences"] and len(loaded) > 1:
        parts.append("<h2>Config differences</h2><table><tr><th>field</th>")
        parts += [f"<th>{e(n)}</th>" for n in comparison["runs"]]
        parts.append("</tr>")
        for key, values in comparison["config_differences"].items():
            parts.append(f"<tr><td>{e(key)}</td>" + "".join(f"<td>{e(json.dumps(v))}</td>" for v in values) + "</tr>")
        parts.append("</table>")
    for i, run in enumerate(loaded):
        m = run["metrics"]
        parts.append(f"<section id='run-{i}'><h2>{e(comparison['runs'][i])}</h2>"
                     f"<p>{e(run['path'])}</p><table><tr><th>label</th><th>precision</th><th>recall</th>"
                     "<th>F1</th><th>support</th></tr>")
        for row in m.get("per_class", []):
            parts.append(f"<tr><td>{e(str(row['label']))}</td><td>{100 * row['precision']:.2f}%</td>"
                         f"<td>{100 * row['recall']:.2f}%</td><td>{100 * row['f1']:.2f}%</td>"
                         f"<td>{row['support']}</td></tr>")
        parts.append("</table>")
        if m.get("confusion_matrix"):
            parts.append(_img(confusion_matrix_png(m), "confusion matrix"))
        if run["history"]:
            parts.append(_img(learning_curves_png(run["history"]), "learning curves"))
        parts.append(f"<h3>Config</h3><pre>{e(json.dumps(run['config'], indent=2))}</pre></section>")
    parts.append("</body></html>")
    return "".join(parts)


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def format_metric(key: str, value: Any) -> str:
    """A metric value as shown in tables: percentages for accuracy/F1, else a number."""
    if not isinstance(value, (int, float)):
        return "–"
    if key in ("accuracy", "macro_f1"):
        return f"{100 * value:.2f}%"
    return f"{value:,.1f}"


def write_html_report(run_dirs: Sequence[Path], out: str | Path) -> Path:
    """Write the report atomically to `out`."""
    out = Path(out)
    if not out.parent.is_dir():
        raise RunError(f"cannot write {out}: folder {out.parent} does not exist")
    page = html_report(run_dirs)
    try:
        runs.write_bytes(out, page.encode("utf-8"))
    except OSError as err:
        raise RunError(f"cannot write {out}: {err.strerror or err}") from None
    return out
