"""experiments run -> runs list/compare, plots, HTML report, evaluate --plot."""

from __future__ import annotations

import json
import re

import pytest

from conftest import ag_rows, assert_one_line_error, write_csv, cli as run

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("exps")
    train = write_csv(root / "ag" / "train.csv", ag_rows(40, seed=1))
    evaluation = write_csv(root / "ag" / "eval.csv", ag_rows(10, seed=2))
    (root / "experiments.yaml").write_text("""
defaults:
  training: {epochs: 2, global_batch_size: 16}
experiments:
  narrow:
    description: embed 8
    model: transformer
    model_params: {embed_dim: 8, num_heads: 1, ff_dim: 8, max_length: 16, vocab_size: 200}
  wide:
    description: embed 16
    model: transformer
    model_params: {embed_dim: 16, num_heads: 1, ff_dim: 8, max_length: 16, vocab_size: 200}
""")
    result = run("experiments", "run", "narrow", "wide", "--experiments-file", root / "experiments.yaml",
                 "--runs-root", root / "runs", "--set", f"data=csv:{train}", "--eval-data", f"csv:{evaluation}")
    assert result.exit_code == 0, result.output
    return root, result


def test_experiments_run_ends_with_a_comparison_table(two_runs):
    root, result = two_runs
    table = result.stdout[result.stdout.index("experiments"):]
    assert "narrow" in table and "wide" in table and "accuracy" in table
    runs = sorted(p for p in (root / "runs").iterdir() if not p.is_symlink())
    assert [p.name.split("-", 2)[2] for p in runs] == ["narrow", "wide"]  # readable: <time>-<experiment>
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["data"]["train"].endswith("train.csv") and config["training"]["epochs"] == 2


def test_every_run_has_plots(two_runs):
    root, _ = two_runs
    for path in (root / "runs").iterdir():
        if not path.is_symlink():
            for name in ("confusion_matrix.png", "learning_curves.png"):
                assert (path / name).read_bytes().startswith(PNG), (path, name)
            assert any((path / "logs").rglob("events.out.tfevents*"))


def test_runs_list_json(two_runs):
    root, _ = two_runs
    result = run("runs", "list", "--runs-root", root / "runs", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["experiment"] for r in rows] == ["narrow", "wide"]
    assert all(r["status"] == "complete" and 0 <= r["accuracy"] <= 1 and r["epochs"] == 2 for r in rows)
    assert len({r["name"] for r in rows}) == 2
    table = run("runs", "list", "--runs-root", root / "runs")
    assert table.exit_code == 0 and "complete" in table.stdout


def test_runs_compare_shows_differences_and_best(two_runs):
    root, _ = two_runs
    names = [
        json.loads(line)["name"]
        for line in run("runs", "list", "--runs-root", root / "runs", "--json").stdout.splitlines()
    ]
    result = run("runs", "compare", *names, "--runs-root", root / "runs", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["runs"] == names
    assert data["config_differences"] == {"model_params.embed_dim": [8, 16]}
    accuracies = data["metrics"]["accuracy"]
    assert data["comparable"] and data["leader"]["accuracy"] == names[accuracies.index(max(accuracies))]
    # bold ("best") only for a lead beyond noise: 40 eval examples rarely give one
    assert data["best"].get("accuracy") == (data["leader"]["accuracy"] if data["tests"]["accuracy"][0]["significant"]
                                            else None)
    table = run("runs", "compare", *names, "--runs-root", root / "runs")
    assert "model_params.embed_dim" in table.stdout and "accuracy" in table.stdout


def test_html_report_is_self_contained(two_runs, tmp_path):
    root, _ = two_runs
    out = tmp_path / "report.html"
    result = run("report", "--runs-root", root / "runs", "--out", out)
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert page.count("data:image/png;base64,") == 6  # three plots per run (with its reliability diagram), inline
    assert "model_params.embed_dim" in page and "narrow" in page and "wide" in page
    assert "src='http" not in page and 'src="http' not in page


@pytest.mark.parametrize("field, value", [("accuracy", "abc"), ("confusion_matrix", "x"), ("per_class", 5),
                                          ("labels", 5), ("per_class", [{"label": "a"}])])
def test_a_report_of_a_tampered_metrics_file_leaves_the_field_out(two_runs, tmp_path, field, value):
    import shutil

    root, _ = two_runs
    copy = tmp_path / "runs" / "copy"
    shutil.copytree((root / "runs" / "latest").resolve(), copy)
    metrics = json.loads((copy / "metrics.json").read_text())
    (copy / "metrics.json").write_text(json.dumps({**metrics, field: value}))
    result = run("report", copy, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    page = (tmp_path / "r.html").read_text()
    assert ("confusion matrix" in page) is (field not in ("confusion_matrix", "labels"))
    assert ("<td>" + str(metrics["per_class"][0]["label"])) in page or field == "per_class"


def test_an_accuracy_out_of_its_range_is_not_shown(two_runs, tmp_path):
    """An accuracy of 2.5 in run.json and metrics.json (a hand edit) is left out of runs list, runs compare and
    report: shown "–", never as 250%."""
    import shutil

    root, _ = two_runs
    copy = tmp_path / "runs" / "copy"
    shutil.copytree((root / "runs" / "latest").resolve(), copy)
    for name in ("run.json", "metrics.json"):
        data = json.loads((copy / name).read_text())
        (copy / name).write_text(json.dumps({**data, "accuracy": 2.5, "macro_f1": -0.5}))
    listed = [json.loads(x) for x in run("runs", "list", "--runs-root", tmp_path / "runs", "--json").stdout.split(
        "\n") if x]
    assert [(r["accuracy"], r["macro_f1"]) for r in listed] == [(None, None)]
    compared = run("runs", "compare", copy, root / "runs" / "latest")
    assert compared.exit_code == 0, compared.output
    shown_as_percent = re.compile(r"(250|-50)(\.\d+)?\s*%")  # (run names hold digits such as 250 too)
    assert not shown_as_percent.search(compared.stdout)
    result = run("report", copy, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert not shown_as_percent.search((tmp_path / "r.html").read_text())


def test_evaluate_plot_writes_a_png(two_runs, tmp_path):
    root, _ = two_runs
    plot = tmp_path / "cm.png"
    result = run("evaluate", "--runs-root", root / "runs", "--plot", plot, "--json")
    assert result.exit_code == 0, result.output
    assert plot.read_bytes().startswith(PNG)
    assert json.loads(result.stdout)["examples"] == 40


def test_experiments_list(two_runs):
    root, _ = two_runs
    result = run("experiments", "list", "--experiments-file", root / "experiments.yaml", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    own = [r for r in rows if r.get("source") == str(root / "experiments.yaml")]
    assert [(r["name"], r["model"], r["description"]) for r in own] == [
        ("narrow", "transformer", "embed 8"), ("wide", "transformer", "embed 16")]
    shipped = {r["name"]: r["source"] for r in rows if "name" in r and r not in own}
    assert (
        shipped["bert-finetune-adamw"].endswith("recipes.yaml") and {"group": "baselines"}.items() <= rows[-1].items()
    )


def test_a_failing_experiment_does_not_stop_the_others(two_runs, tmp_path):
    root, _ = two_runs
    train = root / "ag" / "train.csv"
    (tmp_path / "x.yaml").write_text(f"""
experiments:
  broken: {{model: transformer, data: {{train: "csv:{tmp_path}/missing.csv"}}}}
  fine:
    model: transformer
    data: {{train: "csv:{train}"}}
    model_params: {{embed_dim: 8, num_heads: 1, ff_dim: 8, max_length: 16, vocab_size: 200}}
    training: {{epochs: 1, global_batch_size: 16}}
""")
    result = run(
        "experiments",
        "run",
        "--all",
        "--experiments-file",
        tmp_path / "x.yaml",
        "--runs-root",
        tmp_path / "runs",
        "--json",
    )
    assert result.exit_code == 1
    rows = json.loads(result.stdout.splitlines()[-1])["experiments"]
    assert [(r["experiment"], r["status"]) for r in rows] == [("broken", "failed"), ("fine", "complete")]
    assert "missing.csv" in rows[0]["error"]
    assert result.stderr.strip().splitlines()[-1] == "error: 1 of 2 experiments failed: broken"


def _fake_run(root, name, model, finished, status="complete", group=None, **extra):
    run = root / name
    run.mkdir(parents=True)
    info = {"name": name, "model": model, "experiment": extra.pop("experiment", None), "status": status,
            "started": finished, "finished": finished, **extra}
    if group:
        info["group"] = {"id": group, "index": 0, "size": 2}
    (run / "run.json").write_text(json.dumps(info))
    (run / "model-lite.npz").write_bytes(b"")
    (run / "labels.json").write_text('["a", "b"]')
    (run / "config.json").write_text(json.dumps({"model": model}))
    (run / "metrics.json").write_text("{}")
    return run


def test_every_command_names_a_run_the_same_ways(tmp_path):
    """One resolver: a path, a name, the end of a name, a model or experiment name (its newest complete run);
    several matches and group ids are refused with what to do."""
    from textclf.errors import RunError
    from textclf.runs import resolve_run

    root = tmp_path / "runs"
    a = _fake_run(root, "20261201-100000-ngram-linear", "ngram-linear", "2026-12-01T10:00:00")
    b = _fake_run(root, "20261201-110000-ngram-linear", "ngram-linear", "2026-12-01T11:00:00")
    c = _fake_run(root, "20261201-120000-mine", "transformer", "2026-12-01T12:00:00", experiment="mine")
    _fake_run(root, "20261201-130000-transformer", "transformer", "2026-12-01T13:00:00", status="failed", error="x")
    _fake_run(root, "20261201-140000-g", "ngram-mlp", "2026-12-01T14:00:00", group="G1")
    assert resolve_run(str(a), root) == a.resolve() and resolve_run(a.name, root) == a.resolve()
    assert resolve_run("100000-ngram-linear", root) == a.resolve()  # the end of one name
    assert resolve_run("ngram-linear", root) == b.resolve()  # a model: its newest complete run
    assert resolve_run("mine", root) == c.resolve()  # an experiment (and the end of a name)
    assert resolve_run("transformer", root) == c.resolve()  # the failed transformer run is skipped
    with pytest.raises(RunError, match=r"linear matches 2 runs under .*: 20261201-100000-ngram-linear, "
                                       r"20261201-110000-ngram-linear; name one of them"):
        resolve_run("linear", root)
    with pytest.raises(RunError, match="G1 is a group of runs"):
        resolve_run("G1", root)
    with pytest.raises(RunError, match="run not found: nope"):
        resolve_run("nope", root)


def test_predict_never_takes_a_run_for_a_text(tmp_path):
    from typer.testing import CliRunner

    from textclf.cli import app

    root = tmp_path / "runs"
    run = _fake_run(root, "20261201-100000-ngram-linear", "ngram-linear", "2026-12-01T10:00:00")
    for ref in (run.name, "100000-ngram-linear", "ngram-linear"):  # a name, its end, its model
        result = CliRunner().invoke(app, ["predict", ref, "some text", "--runs-root", str(root)])
        assert result.exit_code == 1
        assert result.output.strip() == (f"error: {ref} is a run, not a text: give it as --run {ref} (textclf predict "
                                         f"--run {ref} TEXT...); with --run given, every argument is a text "
                                         f"(so --run RUN {ref} classifies the word itself)")


def test_a_group_id_is_never_a_text_and_a_common_word_is_not_a_run(tmp_path):
    from textclf.runs import is_run_reference, resolve_items

    root = tmp_path / "runs"
    _fake_run(root, "20261201-100000-ngram-linear", "ngram-linear", "2026-12-01T10:00:00")
    _fake_run(root, "20261201-110000-ngram-linear", "ngram-linear", "2026-12-01T11:00:00")
    member = _fake_run(root, "20261201-120000-g", "ngram-mlp", "2026-12-01T12:00:00",
                       group="20261201-120000-ngram-mlp-seeds2")
    for ref in ("20261201-120000-ngram-mlp-seeds2", "120000-ngram-mlp-seeds2", "ngram-mlp-seeds2"):
        assert is_run_reference(ref, root), ref  # a group id or its end: refused as a text
        assert resolve_items([ref], root) == [[member]]  # and named by its end like a run
    assert not is_run_reference("linear", root)  # two runs end with it and it has no `-`: a word to classify
    assert is_run_reference("ngram-linear", root) and is_run_reference("110000-ngram-linear", root)


def test_a_copied_run_is_listed_under_its_own_folder_name(tmp_path):
    import shutil

    from textclf.runs import list_runs, resolve_run

    root = tmp_path / "runs"
    run = _fake_run(root, "20261201-100000-ngram-linear", "ngram-linear", "2026-12-01T10:00:00")
    shutil.copytree(run, root / "ngram-linear-copy")
    assert sorted(i["name"] for i in list_runs(root)) == ["20261201-100000-ngram-linear", "ngram-linear-copy"]
    assert resolve_run("linear-copy", root, complete=False) == root / "ngram-linear-copy"


def test_a_complete_run_missing_its_files_is_listed_damaged_and_refused(tmp_path):
    """A run whose files were removed by hand is not shown complete, nor picked as the newest complete run."""
    from textclf.errors import RunError
    from textclf.runs import complete_runs, list_runs, resolve_run

    root = tmp_path / "runs"
    good = _fake_run(root, "20261201-100000-ngram-linear", "ngram-linear", "2026-12-01T10:00:00")
    bad = _fake_run(root, "20261202-100000-ngram-linear", "ngram-linear", "2026-12-02T10:00:00")
    (bad / "labels.json").unlink()
    listed = run("runs", "list", "--json", "--runs-root", root)
    assert listed.exit_code == 0, listed.output
    rows = {r["name"]: r for r in map(json.loads, listed.stdout.splitlines()) if "name" in r}
    assert rows[bad.name]["status"] == "damaged" and rows[good.name]["status"] == "complete"
    assert complete_runs(root) == [good] and resolve_run(None, root) == good.resolve()
    with pytest.raises(RunError, match="is damaged: labels.json missing; train it again"):
        resolve_run(bad, root)
    (bad / "model-lite.npz").unlink()
    assert {i["name"]: i.get("error") for i in list_runs(root)}[bad.name] == (
        "missing the model (model.keras or model-lite.npz), labels.json")
    (good / "run.json").write_text('{"status": "compl')  # a truncated run.json: listed as damaged, not left out
    assert {i["name"]: (i["status"], i.get("error")) for i in list_runs(root)}[good.name] == (
        "damaged", "run.json unreadable")
    listed = run("runs", "list", "--runs-root", root)
    assert listed.exit_code == 0 and good.name in listed.stdout, listed.output


def test_tests_that_disagree_are_called_borderline_not_noise():
    from textclf.reports import verdict_lines

    test = {"other": "b", "difference": 0.1333, "interval": [0.025, 0.25], "p_value": 0.0574, "test": "McNemar",
            "significant": False}
    comparison = {"comparable": True, "untested": None, "leader": {"accuracy": "a"}, "tests": {"accuracy": [test]}}
    [line] = verdict_lines(comparison)
    assert "not ahead by more than noise by its test, though the bootstrap interval excludes 0: borderline" in line
    comparison["tests"]["accuracy"][0] = {**test, "interval": [-0.01, 0.25]}
    assert verdict_lines(comparison)[0].endswith("— not ahead by more than noise")


def test_predictions_of_runs_with_other_class_orders_are_compared_by_name():
    """Each run saves class indices into its own labels.json: two runs that answer the same names with the
    classes listed in other orders are the same answers, not a difference."""
    import numpy as np

    from textclf.reports import _in_order

    saved = {"labels": np.array([0, 1, 1]), "predicted": np.array([0, 1, 0])}  # indices into ["b", "a"]
    moved = _in_order(saved, ["b", "a"], ["a", "b"])
    assert moved["labels"].tolist() == [1, 0, 0] and moved["predicted"].tolist() == [1, 0, 1]
    hot = {"labels": np.array([[1, 0, 0]]), "predicted": np.array([[0, 1, 1]])}
    assert _in_order(hot, ["c", "a", "b"], ["a", "b", "c"])["predicted"].tolist() == [[1, 1, 0]]
    assert _in_order(saved, ["x", "y"], ["a", "b"]) is saved  # other classes: left alone


def test_a_group_lists_its_planned_size(tmp_path):
    """A --seeds 3 group interrupted in run 2 is 1/3 complete, not 1/2."""
    root = tmp_path / "runs"
    for i, status in enumerate(("complete", "failed")):
        path = _fake_run(root, f"2026120{i + 1}-100000-x", "ngram-linear", f"2026-12-0{i + 1}T10:00:00",
                         status=status, group="G")
        info = json.loads((path / "run.json").read_text())
        info["group"] = {"id": "G", "index": i, "size": 3}
        (path / "run.json").write_text(json.dumps(info))
    rows = [json.loads(line) for line in run("runs", "list", "--json", "--runs-root", root).stdout.splitlines()]
    [group] = [r for r in rows if r["type"] == "group"]
    assert (group["complete"], group["size"]) == (1, 3)


def test_user_text_and_class_names_are_printed_as_written(tmp_path):
    """Texts, class names and paths are data, never rich markup or emoji codes."""
    data = tmp_path / "m.csv"
    data.write_text("text,label\n" + "".join(f"w{i} a b,{'[/]' if i % 2 else ':train:'}\n" for i in range(20)))
    root = tmp_path / "runs"
    trained = run("train", "--data", f"csv:{data}", "--eval-data", f"csv:{data}", "--runs-root", root)
    assert trained.exit_code == 0, trained.output
    predicted = run("predict", "[/] oops", "[bold]Stocks[/bold] :smile:", "--runs-root", root)
    assert (
        predicted.exit_code == 0
        and "[/] oops" in predicted.stdout
        and "[bold]Stocks[/bold] :smile:" in predicted.stdout
    )
    # control characters are shown as their pictures: every row of the table keeps the others' width
    controlled = run("predict", "a\x00b", "tab\there", "esc\x1b[31m red", "plain", "--runs-root", root)
    assert controlled.exit_code == 0, controlled.output
    assert "a\u2400b" in controlled.stdout and "tab\u2409here" in controlled.stdout and "\x1b" not in controlled.stdout
    rows = [line for line in controlled.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 4 and len({len(line) for line in rows}) == 1
    evaluated = run("evaluate", "--runs-root", root)
    assert evaluated.exit_code == 0 and "[/]" in evaluated.stdout and ":train:" in evaluated.stdout
    stats = run("data", "stats", f"csv:{data}")
    assert stats.exit_code == 0 and "[/]" in stats.stdout and ":train:" in stats.stdout
    missing = run("train", "--data", f"csv:{tmp_path}/:train:[/].csv")
    assert missing.exit_code == 1 and f"{tmp_path}/:train:[/].csv" in missing.output


def test_ctrl_c_stops_experiments_run_and_json_stays_alone_on_stdout(tmp_path, monkeypatch):
    """Ctrl-C in one experiment stops the command (130, the resume line), not just that experiment; with
    --json, stdout is the one JSON document (the runs' summaries go to stderr)."""
    from textclf.errors import Interrupted
    from textclf.training import run as training  # where train() finds run_training

    (tmp_path / "x.yaml").write_text("experiments:\n  one: {model: ngram-linear, data: {train: sample}}\n"
                                     "  two: {model: ngram-linear, data: {train: sample}}\n")
    done = run("experiments", "run", "one", "two", "--experiments-file", tmp_path / "x.yaml", "--runs-root",
               tmp_path / "runs", "--json")
    assert done.exit_code == 0, done.output
    [line] = done.stdout.splitlines()
    assert [r["status"] for r in json.loads(line)["experiments"]] == ["complete", "complete"]
    started = []

    def interrupted(config, **kw):
        started.append(kw.get("experiment"))
        raise Interrupted(tmp_path / "runs" / "x")

    monkeypatch.setattr(training, "run_training", interrupted)
    stopped = run("experiments", "run", "one", "two", "--experiments-file", tmp_path / "x.yaml", "--runs-root",
                  tmp_path / "runs", "--fresh")
    assert stopped.exit_code == 130 and started == ["one"]
    assert stopped.output.strip().splitlines()[-1].startswith("error: interrupted; resume with textclf train --resume")


def test_tune_refuses_a_bad_name_before_any_trial(tmp_path):
    result = run("tune", "ngram-mlp", "--name", "../../x", "--space", "training.learning_rate=1e-3,2e-3",
                 "--trials", "2", "--data", "sample", "--out", tmp_path / "t")
    assert result.exit_code == 1 and "--name '../../x'" in result.output and not (tmp_path / "t").exists()


def test_resume_by_a_model_name_means_its_interrupted_run(tmp_path):
    from textclf.runs import resolve_run

    root = tmp_path / "runs"
    _fake_run(root, "20261201-100000-transformer", "transformer", "2026-12-01T10:00:00")
    stopped = _fake_run(root, "20261201-090000-transformer", "transformer", "2026-12-01T09:00:00", status="failed",
                        error="interrupted")
    assert resolve_run("transformer", root, complete=False, resumable=True) == stopped
    assert resolve_run("transformer", root).name == "20261201-100000-transformer"


def test_compare_refuses_one_run_named_twice(tmp_path):
    root = tmp_path / "runs"
    run_dir = _fake_run(root, "20261201-100000-ngram-linear", "ngram-linear", "2026-12-01T10:00:00")
    result = run("runs", "compare", "ngram-linear", run_dir.name, "--runs-root", root)
    assert result.exit_code == 1
    assert f"ngram-linear and {run_dir.name} name the same run ({run_dir.name})" in result.output


def test_warm_speed_is_the_median_of_rounds_the_runs_taking_turns(monkeypatch):
    """textclf.speed times each run once a round, in turns (a busy spell slows each alike), and gives the median."""
    from textclf import prediction, speed

    calls = []

    class Timed:
        def __init__(self, run_dir, use_twin=False):
            self.name = str(run_dir)

        def probabilities(self, texts):
            calls.append((self.name, len(texts)))

    clock = iter(range(1000))
    monkeypatch.setattr(prediction, "Predictor", Timed)
    monkeypatch.setattr(speed.time, "perf_counter", lambda: float(next(clock)))
    warm = speed.warm_texts_per_second(["a", "b"], [["x"] * 3, []], rounds=3)
    timed = [name for name, n in calls[2:]]
    assert calls[:2] == [("a", 3), ("b", 1)]  # a warm-up each (no texts: a headline)
    assert timed == ["a", "b", "b", "a", "a", "b"]  # the runs take turns, round by round
    assert warm == [3.0, 1.0]  # each timing takes one tick of the fake clock: texts per tick


def test_plots_of_class_names_no_font_draws_warn_nothing():
    """CJK class names on a machine without a CJK font: the PNG is drawn (boxes for those glyphs) without one
    matplotlib warning per glyph on stderr; a machine with such a font (FALLBACK_FONTS) draws them."""
    import warnings

    import numpy as np

    from textclf.evaluation import report_from_predictions
    from textclf.reports import confusion_matrix_png, _pyplot

    report = report_from_predictions(np.array([0, 1, 1, 2]), np.array([0, 1, 2, 2]), ["世界", "体育", "スポーツ"],
                                     "test").to_dict()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        png = confusion_matrix_png(report)
    assert png.startswith(PNG)
    assert not [w for w in caught if "Glyph" in str(w.message)]
    assert _pyplot().rcParams["font.family"][0] == "DejaVu Sans"


def test_an_output_path_that_is_a_fifo_is_written_into_not_replaced(two_runs, tmp_path):
    """`report --out FIFO` (or a device such as /dev/stdout) streams the page into it; the atomic write path
    replaced it with a regular file (as root, /dev/full became an HTML file)."""
    import os
    import stat
    import threading

    root, _ = two_runs
    fifo = tmp_path / "page.fifo"
    os.mkfifo(fifo)
    received = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    result = run("report", root / "runs" / "latest", "--out", fifo)
    reader.join(timeout=60)
    assert result.exit_code == 0, result.output
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert received and received[0].startswith(b"<!doctype html>")


@pytest.mark.parametrize("damage, fragment", [
    (lambda p: {**p, "predicted": p["predicted"] + 100}, "its predicted classes are not those of labels.json"),
    (lambda p: {k: v[:5] for k, v in p.items()}, "(5 eval examples, metrics.json says 40)"),
    (lambda p: {**p, "labels": p["labels"].astype(float)}, "its true classes are not those of labels.json"),
])
def test_a_tampered_predictions_file_is_one_line(two_runs, tmp_path, damage, fragment):
    """predictions.npz with class ids out of range, too few rows or float labels: runs compare says it is damaged
    (it was "unexpected ValueError: cannot reshape…" or a silent "+0.00 pt, p = 1")."""
    import shutil

    import numpy as np

    root, _ = two_runs
    copy = tmp_path / "runs" / "copy"
    shutil.copytree((root / "runs" / "latest").resolve(), copy)
    with np.load(copy / "predictions.npz") as saved:
        arrays = damage({k: saved[k] for k in saved.files})
    np.savez(copy / "predictions.npz", **arrays)
    assert_one_line_error(run("runs", "compare", copy, root / "runs" / "latest"),
                          "predictions.npz is damaged", fragment)


def test_runs_with_a_made_up_status_or_a_run_json_folder_are_listed_damaged(two_runs, tmp_path):
    """run.json saying status "bogus" or 3, or run.json a folder: listed as damaged with why (the first were
    shown as their status, the last left out)."""
    import shutil

    root, _ = two_runs
    for name, status in (("bogus", "bogus"), ("three", 3)):
        copy = tmp_path / "runs" / name
        shutil.copytree((root / "runs" / "latest").resolve(), copy)
        info = json.loads((copy / "run.json").read_text())
        (copy / "run.json").write_text(json.dumps({**info, "status": status}))
    folder = tmp_path / "runs" / "folder"
    (folder / "run.json").mkdir(parents=True)
    listed = {json.loads(x)["name"]: json.loads(x) for x in
              run("runs", "list", "--runs-root", tmp_path / "runs", "--json").stdout.splitlines()}
    assert {n: r["status"] for n, r in listed.items() if r.get("type", "run") == "run"} == {
        "bogus": "damaged", "three": "damaged", "folder": "damaged"}
    assert listed["bogus"]["error"] == "run.json says status 'bogus'"


def test_an_output_path_that_is_a_link_is_written_through(two_runs, tmp_path):
    """`--out LINK` (as /dev/stdout is, to a file when stdout is redirected): the page goes where the link points,
    and the link stays (the atomic write replaced the link itself with the page)."""
    root, _ = two_runs
    target, link = tmp_path / "page.html", tmp_path / "link.html"
    target.write_text("")
    link.symlink_to(target)
    assert run("report", root / "runs" / "latest", "--out", link).exit_code == 0
    assert link.is_symlink() and target.read_text().startswith("<!doctype html>")


def test_a_huge_number_in_run_json_is_left_out(two_runs, tmp_path):
    """A 400-digit pid or accuracy (math.isfinite overflows on it): left out, and every run still listed."""
    import shutil

    root, _ = two_runs
    copy = tmp_path / "runs" / "copy"
    shutil.copytree((root / "runs" / "latest").resolve(), copy)
    info = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**info, "pid": 10**400, "accuracy": 10**400}))
    listed = run("runs", "list", "--runs-root", tmp_path / "runs", "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout.splitlines()[0])["accuracy"] is None
