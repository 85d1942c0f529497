"""Plots of a run (confusion matrix, learning curves) and a self-contained HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from textclf import runs
from textclf.errors import RunError



# Fonts that draw the scripts DejaVu Sans lacks (CJK class names: 体育, スポーツ), used glyph by glyph after it
# where the machine has them (matplotlib's font fallback)
FALLBACK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans CJK TC", "Noto Sans CJK KR",
                  "Source Han Sans SC", "Source Han Sans", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei",
                  "Droid Sans Fallback", "Microsoft YaHei", "PingFang SC", "Hiragino Sans", "Malgun Gothic",
                  "Noto Sans", "Arial Unicode MS")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: no display needed, works in CI and over ssh
    import matplotlib.pyplot as plt

    if not getattr(_pyplot, "fonts", None):
        from matplotlib import font_manager

        installed = {f.name for f in font_manager.fontManager.ttflist}
        _pyplot.fonts = ["DejaVu Sans", *(name for name in FALLBACK_FONTS if name in installed)]
        plt.rcParams["font.family"] = _pyplot.fonts
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
    """A report dict's confusion matrix as a PNG (counts, rows normalised for the colour); a
    multi-label report (no confusion matrix) as precision, recall and F1 per label."""
    import numpy as np

    plt = _pyplot()
    if report.get("multilabel"):
        rows = report["per_class"]
        fig, ax = plt.subplots(figsize=(min(3 + 0.8 * len(rows), 14), 3.8))
        x = np.arange(len(rows))
        for offset, key in ((-0.27, "precision"), (0.0, "recall"), (0.27, "f1")):
            ax.bar(x + offset, [100 * r[key] for r in rows], width=0.27, label=key)
        ax.set_xticks(x, [str(r["label"]) for r in rows], rotation=45, ha="right")
        ax.set_ylim(0, 100)
        ax.set_ylabel("%")
        ax.legend(fontsize=8, loc="lower right")
        data = str(report.get("data", ""))
        ax.set_title(f"{Path(data).name or data}: micro-F1 {100 * report['micro_f1']:.2f}%, "
                     f"macro-F1 {100 * report['macro_f1']:.2f}%", fontsize=10)
        return _png(fig)
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
    accuracy = f"accuracy {format_metric('accuracy', report.get('accuracy'))}"
    ax.set_title(f"{Path(data).name or data}: {accuracy}", fontsize=10)
    return _png(fig)


def learning_curves_png(history: dict[str, list[float]]) -> bytes:
    """Loss and accuracy per epoch, training and validation; for a model fitted without epochs (liblinear's
    C search: history {"c", "val_accuracy"}), the validation score of each C tried."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    if history.get("c"):
        fig, ax = plt.subplots(1, 1, figsize=(4.5, 3.5))
        ax.plot(history["c"], history["val_accuracy"], "-o", markersize=4)
        ax.set_xscale("log")
        ax.set_xticks(history["c"], [f"{c:g}" for c in history["c"]])
        ax.set_xlabel("C (regularisation: larger fits the training data more closely)")
        ax.set_title("validation score by C")
        ax.grid(alpha=0.3)
        return _png(fig)

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, style in ((metric, "-o"), (f"val_{metric}", "--s")):
            values = history.get(key, [])
            if values:
                ax.plot(range(1, len(values) + 1), values, style, markersize=3,
                        label="validation" if key.startswith("val_") else "training")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        ax.set_title(metric)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:  # a run fitted without epochs (liblinear) has no curves
            ax.legend()
    return _png(fig)


def coverage_curve_png(curve: dict, title: str = "") -> bytes:
    """Accuracy of the answers vs coverage (and precision vs recall for two classes)."""
    plt = _pyplot()
    coverage = "coverage" in curve  # a multi-label curve has precision/recall only (micro, over all labels)
    panels = int(coverage) + int("pr" in curve)
    fig, axes = plt.subplots(1, panels, figsize=(4.5 * panels, 3.5), squeeze=False)
    if coverage:
        ax = axes[0][0]
        ax.plot(curve["coverage"], curve["accuracy"], "-", color="#3b6ea8")
        ax.set_xlabel("coverage (share answered)")
        ax.set_ylabel("accuracy of the answers")
        ax.set_title("accuracy vs coverage")
        ax.grid(alpha=0.3)
    if "pr" in curve:
        ax = axes[0][panels - 1]
        ax.plot(curve["pr"]["recall"], curve["pr"]["precision"], "-", color="#a86b3b")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title("precision vs recall (second class)" if coverage else "precision vs recall (every label)")
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=9)
    return _png(fig)


def _png(fig) -> bytes:
    """The figure as PNG bytes. A character no installed font draws (a CJK class name on a machine without
    such fonts, FALLBACK_FONTS) is drawn as a box, without matplotlib's warning per glyph on stderr."""
    import warnings

    plt = _pyplot()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .*missing from font", category=UserWarning)
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def frontier_png(names: Sequence[str], accuracy: Sequence[float], texts_per_second: Sequence[float]) -> bytes:
    """Accuracy against warm predict texts/s (log scale), one labelled point per run or group."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.scatter(texts_per_second, [100 * a for a in accuracy], color="#1f77b4")
    for name, x, y in zip(names, texts_per_second, accuracy):
        ax.annotate(str(name), (x, 100 * y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("predict texts/s, warm (log scale)")
    ax.set_ylabel("accuracy %")
    ax.set_title("accuracy vs prediction speed")
    ax.grid(True, alpha=0.3)
    return _png(fig)


def save_run_plots(run_dir: Path, report: dict, history: dict[str, list[float]], probs=None, labels=None) -> None:
    """Write the run's confusion_matrix.png, learning_curves.png and (given its eval probabilities and
    labels) reliability.png, atomically."""
    runs.write_bytes(Path(run_dir) / runs.CONFUSION_PNG, confusion_matrix_png(report))
    runs.write_bytes(Path(run_dir) / runs.CURVES_PNG, learning_curves_png(history))
    if probs is not None:
        runs.write_bytes(Path(run_dir) / runs.RELIABILITY_PNG, reliability_png(probs, labels))


def reliability_png(probs, labels, before=None, title: str = "") -> bytes:
    """A reliability diagram: accuracy against confidence in 15 equal-width bins (the top label's
    probability; every label's, for multi-label data), with the bins' counts; `before`: the uncalibrated
    probabilities drawn too."""
    from textclf import calibration

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], color="#999", linestyle="--", linewidth=1, label="calibrated")
    for p, name, color in ((before, "before", "#d62728"), (probs, "model", "#1f77b4")):
        if p is None:
            continue
        confidence, correct = calibration._events(p, labels)
        edges = np.minimum((confidence * calibration.BINS).astype(int), calibration.BINS - 1)
        bins = [b for b in range(calibration.BINS) if (edges == b).any()]
        ax.plot([confidence[edges == b].mean() for b in bins], [correct[edges == b].mean() for b in bins],
                marker="o", color=color, label=f"{name}: ECE {calibration.ece(p, labels):.3f}")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title or "reliability")
    ax.legend(loc="upper left", fontsize=8)
    return _png(fig)


def check_plot_path(path: str | Path, option: str = "--plot") -> Path:
    """A writable .png path, or a RunError saying why not (naming `option`)."""
    return check_output_path(path, (".png",), option, "a PNG")


def check_output_path(path: str | Path, suffixes: tuple[str, ...], option: str, what: str) -> Path:
    """A writable path ending in one of `suffixes` (what `option` writes), or a RunError saying why not."""
    import os

    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise RunError(f"{option} writes {what}; give a path ending in {' or '.join(suffixes)}, not {path.name!r}")
    _check_folder(path)
    if not os.access(path.parent, os.W_OK):
        raise RunError(f"cannot write {path}: folder {path.parent} is not writable")
    return path


def _check_folder(path: Path) -> None:
    """RunError when `path`'s folder is missing or is not a folder."""
    if path.parent.exists() and not path.parent.is_dir():
        raise RunError(f"cannot write {path}: {path.parent} is not a folder")
    if not path.parent.is_dir():
        raise RunError(f"cannot write {path}: folder {path.parent} does not exist")


def write_plot(path: str | Path, report: dict) -> Path:
    """Write a confusion-matrix PNG for an evaluation to `path`."""
    return runs.write_output(check_plot_path(path), confusion_matrix_png(report))


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


TESTED_METRICS = ("accuracy", "macro_f1")  # per-example paired tests; the others are reported as measured


def summarize_runs(run_dirs: Sequence[Path]) -> dict[str, Any]:
    """Mean, sd and 95% interval of accuracy and macro-F1 over runs (a group)."""
    from textclf import stats

    metrics = [runs.Run.open(p).metrics for p in run_dirs]
    return {"n": len(metrics), **{key: stats.summary([m[key] for m in metrics if isinstance(m.get(key), (int, float))])
                                  for key in TESTED_METRICS}}


def compare_runs(items: Sequence[Path | Sequence[Path]], names: Sequence[str] | None = None,
                 speed: bool = False) -> dict[str, Any]:
    """Runs or groups of runs (a list of run directories each) side by side.

    Config differences; each metric (a group's: the mean over its runs, with sd and 95%
    interval); and, when every run was evaluated on the same eval data, the leader of each
    metric tested against every other item on the saved per-example predictions (accuracy:
    McNemar's exact test and a paired bootstrap interval; macro-F1: a paired bootstrap interval
    and p). `best` names a leader only when it is ahead of every other item by more than noise
    (speed and duration: when the eval data match). Items evaluated on different data are
    `comparable: false` and nothing is ranked. `speed`: also each item's prediction speed (its first run,
    textclf.speed: warm texts/s and cold predict seconds, measured now), reported as measured.
    """
    groups = [[Path(item)] if isinstance(item, (str, Path)) else [Path(p) for p in item] for item in items]
    loaded = [[load_run_summary(p) for p in members] for members in groups]
    names = list(names) if names is not None else _item_names(loaded)
    flat = [flatten(_group_config(g)) for g in loaded]
    keys = sorted(set().union(*flat)) if flat else []
    differences = {k: [f.get(k) for f in flat] for k in keys
                   if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1}
    metrics: dict[str, list[Any]] = {}
    summaries: dict[str, list[Any]] = {}
    for key, _, _ in COMPARED_METRICS:
        values = [[r["metrics"].get(key) for r in g] for g in loaded]
        numbers = [[v for v in vs if isinstance(v, (int, float))] for vs in values]
        metrics[key] = [vs[0] if len(vs) == 1 else (sum(ns) / len(ns) if ns else None)
                        for vs, ns in zip(values, numbers)]
        if key in TESTED_METRICS:
            from textclf import stats

            summaries[key] = [stats.summary(ns) for ns in numbers]
    eval_keys = [_eval_key(g) for g in loaded]
    comparable = len(set(eval_keys)) == 1
    result: dict[str, Any] = {
        "runs": names, "paths": [g[0]["path"] if len(g) == 1 else [r["path"] for r in g] for g in loaded],
        "kinds": ["run" if len(g) == 1 else "group" for g in loaded], "n": [len(g) for g in loaded],
        "config_differences": differences, "metrics": metrics, "summaries": summaries,
        "comparable": comparable, "not_comparable": None if comparable else _why_not_comparable(names, loaded),
        "leader": {}, "tests": {}, "best": {}, "untested": None,
    }
    if comparable and len(loaded) > 1:
        _rank(result, loaded, names, metrics)
    if speed:
        from textclf.speed import measure

        result["metrics"].update(measure([Path(g[0]["path"]) for g in loaded]))
    return result


def shown_metrics(comparison: dict) -> tuple:
    """COMPARED_METRICS, and the speed metrics when the comparison measured them."""
    from textclf.speed import SPEED_METRICS

    return COMPARED_METRICS + tuple(m for m in SPEED_METRICS if m[0] in comparison["metrics"])


def frontier(comparison: dict) -> bytes | None:
    """The accuracy-speed plot of a comparison that measured speed (None otherwise)."""
    metrics = comparison["metrics"]
    if "predict_texts_per_second" not in metrics:
        return None
    return frontier_png(comparison["runs"], metrics["accuracy"], metrics["predict_texts_per_second"])


def _item_names(loaded: list[list[dict]]) -> list[str]:
    """A run's name, a group's id; paths (or "id (N runs)") when names repeat."""
    names = [g[0]["name"] if len(g) == 1 else str(g[0]["info"].get("group", {}).get("id", g[0]["name"]))
             for g in loaded]
    if len(set(names)) < len(names):
        names = [g[0]["path"] if len(g) == 1 else f"{n} ({len(g)} runs)" for n, g in zip(names, loaded)]
    return names


def _rank(result: dict, loaded: list[list[dict]], names: list[str], metrics: dict) -> None:
    """Each metric's leader, its paired tests against every other item, and `best` when it beats all by
    more than noise (into `result`)."""
    predictions = _aligned_predictions(loaded)
    if predictions is None:
        result["untested"] = ("no per-example predictions in some runs (trained before textclf saved "
                              "predictions.npz): train them again to test the differences")
    for key, _, higher in COMPARED_METRICS:
        present = [(v, i) for i, v in enumerate(metrics[key]) if isinstance(v, (int, float))]
        if len(present) < 2:
            continue
        lead = (max if higher else min)(present)[1]
        result["leader"][key] = names[lead]
        if key not in TESTED_METRICS:
            if key != "duration_seconds":  # a run's wall time is the machine's as much as the run's: not ranked
                result["best"][key] = names[lead]
            continue
        if predictions is None:
            continue
        tests = [dict(_paired_test(key, predictions, lead, other, len(loaded[lead][0]["labels"])), other=names[other])
                 for _, other in present if other != lead]
        result["tests"][key] = tests
        if tests and all(t["significant"] for t in tests):
            result["best"][key] = names[lead]


def _group_config(members: list[dict]) -> dict:
    """The config the runs of a group share (the seed and fold vary by design)."""
    config = json.loads(json.dumps(members[0]["config"]))
    if len(members) > 1:
        config.get("training", {}).pop("seed", None)
        config.get("data", {}).pop("fold", None)
    return config


def _fingerprint(run: dict) -> str:
    m = run["metrics"]
    return str(m.get("eval_fingerprint") or f"{m.get('data')}|{m.get('examples')}")


def _eval_key(members: list[dict]) -> tuple[str, ...]:
    return tuple(sorted({_fingerprint(r) for r in members}))


def _why_not_comparable(names: list[str], loaded: list[list[dict]]) -> str:
    sources = [", ".join(sorted({str(r["metrics"].get("data")) for r in g})) for g in loaded]
    if len(set(sources)) == 1:  # one data spec: the texts or labels differ (e.g. multi-label and single-label)
        kinds = {"multi-label" if any(r["metrics"].get("multilabel") for r in g) else "single-label" for g in loaded}
        why = "read as multi-label by one and single-label by another" if len(kinds) > 1 else \
            "with different texts or labels (the file changed, or other data options)"
        return f"not comparable: the runs were evaluated on {sources[0]} {why}"
    described = "; ".join(f"{n}: {s}" for n, s in zip(names, sources))
    return f"not comparable: the runs were evaluated on different eval data ({described})"


def _aligned_predictions(loaded: list[list[dict]]):
    """Per item: (true labels, predictions (runs, examples)) over the same examples in the same order.

    Runs sharing one eval set are rows; runs on different parts (folds, or seed-dependent held-out
    parts) are concatenated in fingerprint order, so an item's out-of-fold predictions cover it once.
    """
    import numpy as np

    aligned = []
    common: list[str] | None = None  # one class order for all: each run saves indices into its own labels.json
    for members in loaded:
        saved = []
        for r in members:
            run = runs.Run(r["path"])
            common = common or run.labels
            saved.append((_fingerprint(r), _in_order(run.predictions, run.labels, common)))
        if any(p is None for _, p in saved):
            return None
        keys = sorted({k for k, _ in saved})
        if len(keys) == 1:
            labels = saved[0][1]["labels"]
            rows = np.stack([p["predicted"] for _, p in saved])
        else:
            by_key = {k: p for k, p in saved}  # one run per part
            labels = np.concatenate([by_key[k]["labels"] for k in keys])
            rows = np.concatenate([by_key[k]["predicted"] for k in keys])[None, :]
        aligned.append((labels, rows))
    return aligned


def _in_order(saved: dict | None, names: list[str], common: list[str]) -> dict | None:
    """A run's saved {"labels", "predicted"} with class indices (or multi-hot columns) put in `common`'s
    order, when both list the same classes (runs of other classes are not comparable anyway)."""
    import numpy as np

    if saved is None or names == common or sorted(names) != sorted(common):
        return saved
    where = np.array([common.index(n) for n in names])
    if saved["labels"].ndim == 1:
        return {k: where[v] for k, v in saved.items()}
    out = {}
    for key, value in saved.items():
        moved = np.zeros_like(value)
        moved[:, where] = value
        out[key] = moved
    return out


def _paired_test(key: str, predictions, a: int, b: int, num_classes: int) -> dict[str, Any]:
    from textclf import stats

    labels, pa = predictions[a]
    _, pb = predictions[b]
    if key == "accuracy":  # multi-label: subset accuracy, every label of the text right
        correct = (lambda p: p == labels) if labels.ndim == 1 else (lambda p: (p == labels).all(axis=-1))
        result = stats.compare_correctness(correct(pa), correct(pb))
        return {"test": "McNemar exact + paired bootstrap", "difference": result["difference"],
                "interval": result["interval"], "p_value": result["p_value"], "significant": result["significant"],
                **({"pairs": result["pairs"]} if "pairs" in result else {})}
    result = stats.paired_bootstrap_f1(labels, pa, pb, num_classes)
    low, high = result["interval"]
    return {"test": "paired bootstrap", "difference": result["difference"], "interval": result["interval"],
            "p_value": result["p_value"], "significant": result["p_value"] < stats.ALPHA and (low > 0 or high < 0)}


def load_run_summary(run_dir: Path) -> dict[str, Any]:
    """run.json, config.json, metrics.json and history.json of a complete run."""
    run = runs.Run.open(run_dir)
    info = run.info
    if info.get("status") != "complete":
        raise RunError(f"run {run_dir} is not complete (status: {runs.status(info, run.path)})")
    metrics = {**_usable(run.metrics), "duration_seconds": info.get("duration_seconds")}
    return {"name": info.get("name", run.path.name), "path": str(run.path), "info": info,
            "config": run.config, "metrics": metrics, "history": run.history, "labels": run.labels}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _usable(metrics: dict) -> dict:
    """metrics.json as a report may draw it: a field of the wrong shape or out of its range (a hand edit, a
    damaged file) is left out, as runs compare shows it "–", rather than failing the whole report."""
    m = dict(metrics)
    for key, most in (("accuracy", 1), ("macro_f1", 1), ("ece", 1), ("brier", 2), ("nll", math.inf)):
        if key in m and not (_number(m[key]) and 0 <= m[key] <= most):  # 2.5 is no accuracy: not shown as 250%
            del m[key]
    rows = m.get("per_class")
    if rows is not None and not (isinstance(rows, list) and all(
            isinstance(r, dict) and all(_number(r.get(k)) and 0 <= r[k] <= 1 for k in ("precision", "recall", "f1"))
            and _number(r.get("support")) and r["support"] >= 0 for r in rows)):
        del m["per_class"]
    matrix, labels = m.get("confusion_matrix"), m.get("labels")
    if matrix is not None and not (isinstance(labels, list) and isinstance(matrix, list) and len(matrix) == len(labels)
                                   and all(isinstance(row, list) and len(row) == len(labels) and all(map(_number, row))
                                           for row in matrix)):
        del m["confusion_matrix"]
    return m


def html_report(items: Sequence[Path | Sequence[Path]], speed: bool = False) -> str:
    """One self-contained HTML page comparing runs (or groups): metrics with their uncertainty,
    the paired tests, per-class tables, plots, configs (`speed`: and the accuracy-speed frontier)."""
    comparison = compare_runs(items, speed=speed)
    loaded = [load_run_summary(Path(p)) for paths in comparison["paths"]
              for p in ([paths] if isinstance(paths, str) else paths)]
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>textclf report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}"
        "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}"
        "th:first-child,td:first-child{text-align:left}.best{font-weight:bold;color:#17692b}"
        "pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:12px}img{max-width:100%}"
        ".note{color:#8a4b00}section{border-top:2px solid #ddd;margin-top:2em}",
        "</style></head><body><h1>textclf report</h1>",
        "<h2>Metrics</h2><table><tr><th>run or group</th><th>runs</th><th>eval data</th>",
    ]
    parts += [f"<th>{e(label)}</th>" for _, label, _ in shown_metrics(comparison)]
    parts.append("</tr>")
    for i, name in enumerate(comparison["runs"]):
        members = [comparison["paths"][i]] if isinstance(comparison["paths"][i], str) else comparison["paths"][i]
        data = sorted({str(r["metrics"].get("data", "")) for r in loaded if r["path"] in members})
        parts.append(f"<tr><td>{e(name)}</td><td>{comparison['n'][i]}</td><td>{e('; '.join(data))}</td>")
        for key, _, _ in shown_metrics(comparison):
            cls = " class='best'" if comparison["best"].get(key) == name else ""
            parts.append(f"<td{cls}>{e(format_summary(comparison, key, i))}</td>")
        parts.append("</tr>")
    parts.append("</table>")
    plot = frontier(comparison)
    if plot is not None:
        parts.append(_img(plot, "accuracy vs prediction speed"))
    parts += [f"<p class='note'>{e(line)}</p>" for line in verdict_lines(comparison)]
    if comparison["config_differences"] and len(loaded) > 1:
        parts.append("<h2>Config differences</h2><table><tr><th>field</th>")
        parts += [f"<th>{e(n)}</th>" for n in comparison["runs"]]
        parts.append("</tr>")
        for key, values in comparison["config_differences"].items():
            cells = "".join(f"<td>{e(json.dumps(v, ensure_ascii=False))}</td>" for v in values)
            parts.append(f"<tr><td>{e(key)}</td>{cells}</tr>")
        parts.append("</table>")
    for i, run in enumerate(loaded):
        m = run["metrics"]
        parts.append(f"<section id='run-{i}'><h2>{e(run['name'])}</h2>"
                     f"<p>{e(run['path'])}</p><table><tr><th>label</th><th>precision</th><th>recall</th>"
                     "<th>F1</th><th>support</th></tr>")
        for row in m.get("per_class", []):
            parts.append(f"<tr><td>{e(str(row['label']))}</td><td>{100 * row['precision']:.2f}%</td>"
                         f"<td>{100 * row['recall']:.2f}%</td><td>{100 * row['f1']:.2f}%</td>"
                         f"<td>{row['support']}</td></tr>")
        parts.append("</table>")
        parts += _run_plots(run)
        config = json.dumps(run["config"], indent=2, ensure_ascii=False)
        parts.append(f"<h3>Config</h3><pre>{e(config)}</pre></section>")
    parts.append("</body></html>")
    return "".join(parts)


def _run_plots(run: dict) -> list[str]:
    """A run's confusion matrix, learning curves and reliability diagram, as <img> tags."""
    found = []
    if run["metrics"].get("confusion_matrix"):
        found.append(_img(confusion_matrix_png(run["metrics"]), "confusion matrix"))
    if run["history"]:
        found.append(_img(learning_curves_png(run["history"]), "learning curves"))
    reliability = Path(run["path"]) / runs.RELIABILITY_PNG
    if reliability.is_file():
        found.append(_img(reliability.read_bytes(), "reliability diagram"))
    return found


def _img(png: bytes, alt: str) -> str:
    return f"<img alt='{alt}' src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"


def format_summary(comparison: dict, key: str, index: int) -> str:
    """An item's metric: one run's value, or a group's mean ± sd (95% CI)."""
    summary = comparison["summaries"].get(key, [None] * (index + 1))[index]
    if not summary or summary["n"] < 2:
        return format_metric(key, comparison["metrics"][key][index])
    return format_proportion(summary)


def format_proportion(summary: dict | None, *, ci: bool = True) -> str:
    """A proportion's stats.summary in percent: `mean ± sd% (95% CI low–high%)`, one value alone as itself."""
    if not summary or not summary.get("n"):
        return "–"
    if summary["n"] == 1:
        return f"{100 * summary['mean']:.2f}%"
    text = f"{100 * summary['mean']:.2f} ± {100 * summary['sd']:.2f}%"
    if not ci:
        return text
    low, high = (min(max(x, 0.0), 1.0) for x in summary["ci"])  # a proportion's interval, clipped to [0, 1]
    return f"{text} (95% CI {100 * low:.2f}–{100 * high:.2f}%)"


def verdict_lines(comparison: dict) -> list[str]:
    """What the comparison says, in sentences: not comparable, untested, or each leader vs noise."""
    if not comparison["comparable"]:
        return [comparison["not_comparable"] + "; nothing is ranked"]
    if comparison["untested"]:
        return [comparison["untested"]]
    lines = []
    labels = {key: label for key, label, _ in COMPARED_METRICS}
    for key, tests in comparison["tests"].items():
        leader = comparison["leader"][key]
        for t in tests:
            low, high = t["interval"]
            verdict = "ahead by more than noise" if t["significant"] else "not ahead by more than noise"
            if not t["significant"] and (low > 0 or high < 0):  # the two tests disagree: say so, not just "noise"
                verdict += (" by its test, though the bootstrap interval excludes 0: borderline — more eval "
                            "examples or seeds would settle it")
            lines.append(f"{labels[key]}: {leader} vs {t['other']}: {100 * t['difference']:+.2f} pt, 95% interval "
                         f"[{100 * low:+.2f}, {100 * high:+.2f}], p = {t['p_value']:.3g} ({t['test']}) — {verdict}")
    return lines


def format_metric(key: str, value: Any) -> str:
    """A metric value as shown in tables: percentages for accuracy/F1, else a number."""
    if not isinstance(value, (int, float)):
        return "–"
    if key in ("accuracy", "macro_f1"):
        return f"{100 * value:.2f}%"
    if key == "cold_predict_seconds":
        return f"{value:.2f}"
    return f"{value:,.1f}"


def write_html_report(run_dirs: Sequence[Path | Sequence[Path]], out: str | Path, speed: bool = False) -> Path:
    """Write the report atomically to `out`."""
    out = Path(out)
    _check_folder(out)
    return runs.write_output(out, html_report(run_dirs, speed=speed).encode("utf-8"))


# --- `runs list`: runs and groups as rows -------------------------------------------------------------

def run_rows(runs_root: str | Path) -> list[dict]:
    """One row per run (what `runs list` shows; --json prints them); an interrupted run's epochs are those it
    completed."""
    found = runs.list_runs(runs_root)
    for i in found:
        if i["status"] == "interrupted" and i.get("epochs") is None:
            i["epochs"] = runs.Run(i["path"]).epochs_done
    group = lambda i, key: (i.get("group") or {}).get(key) if isinstance(i.get("group"), dict) else None  # noqa: E731
    return [{"type": "run", "name": i["name"], "experiment": i.get("experiment"), "model": i.get("model"),
             "data": i.get("data"), "epochs": i.get("epochs"), "accuracy": i.get("accuracy"),
             "macro_f1": i.get("macro_f1"), "duration_seconds": i.get("duration_seconds"), "status": i["status"],
             "started": i.get("started"), "path": i["path"], "error": i.get("error"),
             "group": group(i, "id"), "group_size": group(i, "size")} for i in found]


def group_rows(rows: list[dict]) -> dict[str, dict]:
    """Group id -> its row: members, complete/size (the size as planned in run.json, not the runs that exist
    so far: an interrupted group whose later runs never started is not "2/2 complete"), mean ± sd."""
    from textclf.stats import summary

    groups: dict[str, dict] = {}
    for r in rows:
        if r["group"]:
            g = groups.setdefault(r["group"], {"type": "group", "group": r["group"], "experiment": r["experiment"],
                                               "model": r["model"], "data": r["data"], "runs": [], "members": []})
            g["runs"].append(r["name"])
            g["members"].append(r)
    for g in groups.values():
        done = [m for m in g["members"] if m["status"] == "complete"]
        sizes = [m["group_size"] for m in g["members"] if isinstance(m["group_size"], int)]
        g.update(complete=len(done), size=max([len(g["members"]), *sizes]),
                 duration_seconds=sum(m["duration_seconds"] or 0 for m in g["members"]),
                 **{k: summary([m[k] for m in done if isinstance(m[k], (int, float))])
                    for k in ("accuracy", "macro_f1")})
    return groups
