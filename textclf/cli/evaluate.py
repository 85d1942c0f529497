"""`textclf evaluate`: metrics of a run on its eval data or another data set."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import ProgressListener, RUN_HELP, json_line, one_run, out, pct, styled


app = typer.Typer()  # registered by textclf.cli


@app.command("evaluate")
def evaluate(
    run_dir: Annotated[Optional[str], typer.Argument(help=RUN_HELP, show_default=False)] = None,
    run: Annotated[Optional[str], typer.Option(help="The run (instead of the argument).", show_default=False)] = None,
    data: Annotated[Optional[str], typer.Option(
        help="Data spec to evaluate on (default: the run's eval data).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    plot: Annotated[Optional[str], typer.Option(help="Also write the confusion matrix as a PNG here.")] = None,
    threshold: Annotated[Optional[float], typer.Option(
        help="Answer only at this top probability or above: adds coverage and the accuracy of the answers.",
        min=0.0, max=1.0)] = None,
    target_accuracy: Annotated[Optional[float], typer.Option(
        help="Find the lowest threshold whose answers reach this accuracy on --data (use validation data, "
             "not the test split).", min=0.0, max=1.0)] = None,
    curve: Annotated[Optional[str], typer.Option(
        help="Write accuracy vs coverage (and precision vs recall for two classes) as a PNG here.")] = None,
    text_field: Annotated[Optional[list[str]], typer.Option(
        help="Text column/feature of --data, when not the training data's; repeat to join several.")] = None,
    label_field: Annotated[Optional[str], typer.Option(
        help="Label column/feature of --data, when not the training data's.")] = None,
    runs_root: Annotated[str, typer.Option(help="Where to look for the latest run.")] = "runs",
    calibration: Annotated[bool, typer.Option("--calibration", help="Also how calibrated the probabilities are "
                                              "without the run's temperature (before / after).")] = False,
) -> None:
    """Accuracy, macro-F1, per-class precision/recall/F1 and the confusion matrix."""
    from textclf.evaluation import evaluate as run_evaluation
    from textclf.runs import resolve_run

    from textclf.reports import check_plot_path

    for option, path in (("--plot", plot), ("--curve", curve)):  # fail before the (slow) evaluation
        if path is not None:
            check_plot_path(path, option)
    with ProgressListener(hold=False) as listener:
        report = run_evaluation(resolve_run(one_run(run_dir, run), runs_root), data, threshold=threshold,
                                target_accuracy=target_accuracy, curve=curve is not None, progress=listener.on_work,
                                text_fields=text_field, label_field=label_field, say=listener.on_status,
                                calibration=calibration)
    if plot is not None:
        from textclf.reports import write_plot

        write_plot(plot, report.to_dict())
    if curve is not None:
        from textclf import runs
        from textclf.reports import coverage_curve_png

        runs.write_output(check_plot_path(curve), coverage_curve_png(report.curve, report.data))
    if as_json:
        json_line(report.to_dict())
        return
    render_report(report)


def render_calibration(measured: dict | None) -> None:
    """ECE, adaptive ECE, Brier and NLL; with evaluate --calibration, without the temperature beside them."""
    from textclf.cli._render import Table

    if not measured:
        return
    keys = (("ece", "ECE (15 bins)"), ("adaptive_ece", "adaptive ECE"), ("brier", "Brier"), ("nll", "NLL"))
    if "before" not in measured:
        out.print("calibration: " + ", ".join(f"{label} {measured[k]:.4f}" for k, label in keys), highlight=False)
        return
    t = measured["temperature"]
    table = Table(title="calibration" + ("" if t is None else f" (temperature {t:.3g})" if isinstance(t, float)
                                         else " (a temperature per label)"))
    for col in ("", "without temperature", "the run's model"):
        table.add_column(col, justify="left" if not col else "right")
    for k, label in keys:
        table.add_row(label, f"{measured['before'][k]:.4f}", f"{measured[k]:.4f}")
    out.print(table)
    if "ece_floor" in measured:
        out.print(f"perfectly calibrated probabilities would show an ECE of {measured['ece_floor']:.4f} on these texts "
                  "(the mean over labels drawn from the run's probabilities): an ECE near that is as calibrated as "
                  "this data can tell", highlight=False)


def render_report(report) -> None:
    from textclf.cli._render import Table

    if report.multilabel:
        out.print(styled("[bold]{}[/]: {} examples (multi-label) — micro-F1 [bold green]{}[/], macro-F1 [bold]{}[/], "
                         "sample-F1 {}, subset accuracy {}, hamming loss {}", report.data, report.examples,
                         pct(report.micro_f1), pct(report.macro_f1), pct(report.samples_f1), pct(report.accuracy),
                         f"{report.hamming_loss:.4f}"), highlight=False)
    else:
        out.print(styled("[bold]{}[/]: {} examples — accuracy [bold green]{}[/], macro-F1 [bold]{}[/]", report.data,
                         report.examples, pct(report.accuracy), pct(report.macro_f1)))
    render_calibration(report.calibration)
    per_class = Table(title="per label" if report.multilabel else "per class")
    extra = ("predicted", "threshold") if report.multilabel else ()
    for col in ("label", "precision", "recall", "F1", "support", *extra):
        per_class.add_column(col, justify="left" if col == "label" else "right")
    for row in report.per_class:
        per_class.add_row(row["label"], pct(row["precision"]), pct(row["recall"]), pct(row["f1"]), str(row["support"]),
                          *([str(row["predicted"]), f"{row['threshold']:.2f}"] if report.multilabel else []))
    out.print(per_class)
    if report.multilabel:
        return
    cm = Table(title="confusion matrix (rows: true, columns: predicted)")
    cm.add_column("")
    for label in report.labels:
        cm.add_column(label, justify="right")
    for label, row in zip(report.labels, report.confusion_matrix):
        own = report.labels.index(label)
        cm.add_row(label, *[styled("[bold]{}[/]", v) if i == own else str(v) for i, v in enumerate(row)])
    out.print(cm)
    a = report.abstention
    if a and a.get("threshold") is None:
        out.print(f"no threshold reaches accuracy {pct(a['target_accuracy'])} on these examples", highlight=False)
    elif a:
        chosen = f" (the lowest reaching accuracy {pct(a['target_accuracy'])})" if "target_accuracy" in a else ""
        answered = pct(a["accuracy_answered"]) if a["accuracy_answered"] is not None else "–"
        out.print(f"threshold {a['threshold']:.4f}{chosen}: coverage {pct(a['coverage'])} ({a['answered']} answered, "
                  f"{a['abstained']} abstained), accuracy of the answers {answered}", highlight=False)
