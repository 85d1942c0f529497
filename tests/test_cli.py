"""The real CLI end to end on small data, and bad input: one line, exit != 0, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import TINY, assert_one_line_error, write_csv
from conftest import cli as run
from textclf.cli import app
from textclf.runs import is_complete

runner = CliRunner()




@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny training run through `train-transformer` on AG-layout CSV files."""
    root = tmp_path_factory.mktemp("cli")
    from conftest import ag_rows

    train = write_csv(root / "ag" / "train.csv", ag_rows(40, seed=1))
    evaluation = write_csv(root / "ag" / "eval.csv", ag_rows(10, seed=2))
    result = run("train-transformer", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}",
                 "--epochs", "2", "--seed", "3", "--runs-root", root / "runs", *TINY)
    assert result.exit_code == 0, result.output
    return root, result


def test_train_writes_a_complete_run_and_latest(trained):
    root, result = trained
    latest = root / "runs" / "latest"
    assert latest.is_symlink() and is_complete(latest)
    files = {p.name for p in latest.iterdir()}
    assert {"config.json", "labels.json", "model.keras", "history.json", "metrics.json", "run.json", "logs"} <= files
    config = json.loads((latest / "config.json").read_text())
    assert config["model"] == "transformer" and config["training"]["epochs"] == 2
    assert config["model_params"]["embed_dim"] == 8
    assert json.loads((latest / "labels.json").read_text()) == ["World", "Sports", "Business", "Sci/Tech"]
    history = json.loads((latest / "history.json").read_text())
    assert len(history["loss"]) == 2 and "val_accuracy" in history
    assert list((latest / "logs").rglob("events.out.tfevents*"))
    assert "accuracy" in result.stdout and "run summary" in result.stdout


def test_evaluate_json_matches_saved_metrics(trained):
    root, _ = trained
    result = run("evaluate", "--json", "--runs-root", root / "runs")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) >= {"accuracy", "macro_f1", "per_class", "confusion_matrix", "labels", "examples"}
    assert report["examples"] == 40 and sum(map(sum, report["confusion_matrix"])) == 40
    saved = json.loads((root / "runs" / "latest" / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(saved["accuracy"])
    assert [c["support"] for c in report["per_class"]] == [10, 10, 10, 10]


def test_predict_answers_a_file_a_chunk_at_a_time(trained, tmp_path, monkeypatch):
    """A file is read, answered and printed a chunk at a time (memory bounded by a chunk, not by the file): rows
    line up with lines across chunk edges, leading blank lines too; a bad line far in is refused by its line
    number once the lines read before it are answered; a table's header is printed once."""
    from textclf import textfiles
    from textclf.cli import predict as predict_cli

    monkeypatch.setattr(predict_cli, "CHUNK_LINES", 3)
    monkeypatch.setattr(textfiles, "CHUNK", 64)  # bytes read at a time: lines before a bad one are read first
    root, _ = trained
    latest = root / "runs" / "latest"
    lines = ["", "", "goal cup", "shares bank", "", "chip software", "team win", "oil price"]
    path = tmp_path / "t.txt"
    path.write_text("\n".join(lines) + "\n")
    rows = [json.loads(x) for x in run("predict", "lead text", "--file", path, "--json", "--run", latest).stdout.split(
        "\n") if x]
    assert [r["text"] for r in rows] == ["lead text", *lines]
    assert [r["label"] is None for r in rows] == [False, *(not line for line in lines)]
    alone = [json.loads(x) for x in run("predict", *filter(None, lines), "--json", "--run", latest).stdout.split(
        "\n") if x]
    assert [(r["label"], r["probability"]) for r in rows[1:] if r["text"]] == [
        (r["label"], pytest.approx(r["probability"], abs=1e-6)) for r in alone]  # as when given at once
    table = run("predict", "--file", path, "--run", latest).stdout
    assert table.count("probability") == 1 and all(line in table for line in filter(None, lines))
    for bad, message in [("z" * 2_000_001, "line 9 has 2,000,001 characters, more than the limit of 2,000,000"),
                         ("z" * 2_000_002, "line 9: longer than 2,000,001 characters, more than a text may have "
                                           "(the run's data.max_text_chars: 2,000,000)")]:
        path.write_text("\n".join(lines + [bad, "never read"]) + "\n")
        result = run("predict", "--file", path, "--json", "--run", latest)
        assert_one_line_error(result, message)
        assert len(result.stdout.splitlines()) == 8  # every line read before the bad one was answered
    path.write_text("\n \n\t\n")
    assert_one_line_error(run("predict", "--file", path, "--run", latest),
                          f"no text to classify: the 3 lines of {path} are blank")
    path.write_text("")
    assert_one_line_error(run("predict", "--file", path, "--run", latest), f"no text to classify: {path} is empty")
    # `-` (stdin) with other inputs: refused, not one of them silently dropped
    for args in (["-", "Stocks"], ["-", "--file", path]):
        assert_one_line_error(run("predict", *args, "--run", latest, input="hi\n"), "`-` reads the texts from stdin")


def test_predict_prints_rows_before_stdin_ends(trained):
    """`… | textclf predict -` answers lines as they arrive: a row comes out while stdin is still open (typed
    lines are answered one by one; a file's come 4,096 at a time)."""
    import threading

    root, _ = trained
    proc = subprocess.Popen([sys.executable, "-m", "textclf", "predict", "-", "--json", "--run",
                             str(root / "runs" / "latest")], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for text in ["goal cup match", "shares bank"]:
            proc.stdin.write(text + "\n")
            proc.stdin.flush()  # one line given; stdin stays open
            row = []
            reader = threading.Thread(target=lambda: row.append(proc.stdout.readline()), daemon=True)
            reader.start()
            reader.join(timeout=120)
            assert row and json.loads(row[0])["text"] == text, proc.poll()
        proc.stdin.write("oil price\n")
        proc.stdin.close()
        assert [json.loads(x)["text"] for x in proc.stdout.read().splitlines()] == ["oil price"]
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()


def test_evaluate_tables_and_other_data(trained):
    root, _ = trained
    other = write_csv(root / "other" / "x.csv", [["2", "Striker scores", "goal match cup"]])
    result = run("evaluate", root / "runs" / "latest", "--data", f"csv:{other}")
    assert result.exit_code == 0, result.output
    assert "confusion matrix" in result.stdout and "1 examples" in result.stdout


def test_predict_texts_file_and_stdin_json(trained, tmp_path):
    root, _ = trained
    result = run("predict", "Stocks rally as oil falls", "goal match striker", "--json", "--top-k", "2",
                 "--runs-root", root / "runs")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["Stocks rally as oil falls", "goal match striker"]
    for r in rows:
        assert r["label"] in ("World", "Sports", "Business", "Sci/Tech")
        assert len(r["top_k"]) == 2 and r["top_k"][0]["label"] == r["label"]
        assert r["top_k"][0]["probability"] >= r["top_k"][1]["probability"]
    texts = tmp_path / "texts.txt"
    texts.write_text("shares profit bank\n\nchip software internet\n")
    from_file = run("predict", "--file", texts, "--json", "--run", root / "runs" / "latest")
    # one row per line: the blank one kept, without a label
    assert [json.loads(x)["text"] for x in from_file.stdout.splitlines()] == [
        "shares profit bank",
        "",
        "chip software internet",
    ]
    stdin = runner.invoke(app, ["predict", "--file", "-", "--runs-root", str(root / "runs")], input="goal cup\n")
    assert stdin.exit_code == 0 and "goal cup" in stdin.stdout
    # lines end at "\n" only (CRLF too): a U+2028, form feed, group separator or NEL inside a line splits nothing
    texts.write_bytes("one\u2028two\r\nthree\fthree\nfive\x1dsix\nseven\x85eight\n".encode("utf-8"))
    rows = [json.loads(x)["text"] for x in run("predict", "--file", texts, "--json", "--run",
                                                  root / "runs" / "latest").stdout.strip().split("\n")]
    assert rows == ["one\u2028two", "three\fthree", "five\x1dsix", "seven\x85eight"]


def test_predict_batches_match_single_answers(trained, monkeypatch):
    """More texts than one batch go through a traced graph, the batches in a shuffled order; one batch runs
    eagerly: each text's answer is its own, in its place."""
    from textclf.prediction import load_predictor, visit_order

    monkeypatch.setattr("textclf.prediction.PREDICT_BATCH", 16)
    root, _ = trained
    predictor = load_predictor(root / "runs" / "latest")
    texts = [f"shares {'profit ' * (i % 7)}bank goal {'cup ' * (i % 3)}{i}" for i in range(100)]
    assert visit_order(7).tolist() != sorted(visit_order(7).tolist())  # 7 batches, not run in length order
    many = predictor.probabilities(texts)
    for i in range(0, 100, 9):
        np.testing.assert_allclose(many[i], predictor.probabilities([texts[i]])[0], atol=1e-5)


def test_batches_run_in_an_order_that_keeps_progress_in_step_with_the_work():
    """Texts of every length from 1 to 20,000 characters, batched in length order: half of the batches, in the
    order they run, hold about half of the characters (in length order they would hold a quarter), so the time
    left that progress extrapolates from the texts done is about right."""
    from textclf.data import length_order
    from textclf.prediction import PREDICT_BATCH, PREDICT_CHARS, visit_order

    lengths = np.arange(1, 20_001)
    batches, _ = length_order(lengths, PREDICT_BATCH, PREDICT_CHARS)
    order = visit_order(len(batches))
    assert sorted(order.tolist()) == list(range(len(batches)))
    np.testing.assert_array_equal(order, visit_order(len(batches)))  # the same order every time
    chars = np.cumsum([lengths[batches[k]].sum() for k in order]) / lengths.sum()
    texts = np.cumsum([len(batches[k]) for k in order]) / len(lengths)
    assert np.abs(chars - texts)[len(order) // 4:].max() < 0.2
    in_length_order = np.cumsum([lengths[b].sum() for b in batches]) / lengths.sum()
    assert in_length_order[len(batches) // 2 - 1] < 0.3  # what the shuffle fixes


def test_work_batches_bound_the_tokens_of_a_batch():
    """Length-sorted batches cut so each holds about `tokens` tokens (characters / 4, at most max_length), in
    the same row order; a text over the budget alone; no budget: the batches as they were."""
    from textclf.data import length_order
    from textclf.prediction import work_batches

    lengths = np.array([4000] * 20 + [240] * 40 + [100] * 100 + [90_000])
    batches, inverse = length_order(lengths, 256, 1 << 22)
    cut = work_batches(batches, lengths, 1024, 128)
    np.testing.assert_array_equal(np.concatenate(cut), np.concatenate(batches))  # `inverse` still applies
    tokens = [np.minimum(lengths[rows] // 4, 128).sum() for rows in cut]
    assert max(tokens) <= 1024 and sorted(len(rows) for rows in cut if lengths[rows[0]] == 100)[-1] == 40
    assert [len(rows) for rows in cut if lengths[rows[0]] >= 4000] == [8, 8, 5]  # cut at max_length: 128 each
    uncapped = work_batches(batches, lengths, 1024, 0)
    assert [len(rows) for rows in uncapped if lengths[rows[0]] >= 4000][-1] == 1  # 90,000 characters alone
    assert work_batches(batches, lengths, 0, 128) is batches


def test_models_list_json():
    result = run("models", "list", "--json")
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert "transformer" in names


@pytest.mark.parametrize("args, fragments", [
    (["train", "--model", "bert-huge", "--data", "sample"], ["unknown model 'bert-huge'", "transformer"]),
    (["train", "--data", "csv:/no/such/file.csv"], ["data file not found: /no/such/file.csv"]),
    (["train", "--data", "sample", "--epochs", "-1"], ["training.epochs: got -1, expected an integer >= 1"]),
    (["train", "--data", "sample", "--batch-size", "0"], ["training.global_batch_size: got 0"]),
    (["train", "--data", "sample", "--learning-rate", "x"], ["Invalid value for '--learning-rate'"]),
    (["train", "--data", "sample", "--set", "training.epochz=2"], ["training.epochz: unknown key"]),
    (["train", "--data", "parquet:x"], ["unknown data spec"]),
    (["train", "--nope"], ["No such option: --nope"]),
    (["evaluate", "/no/such/run"], ["run not found: /no/such/run"]),
    (["predict", "hello", "--run", "/no/such/run"], ["run not found"]),
    (["predict", "--file", "/no/such/texts.txt"], ["file not found: /no/such/texts.txt"]),
    (["train", "--resume", "/no/such/run", "--epochs", "100001"], ["training.epochs: got 100001"]),
    (["train", "--data", "sample", "--set", "training=5"], ["training: expected a mapping of its fields"]),
    (["predict", "x", "--threshold", "nan"], ["'--threshold': got nan, expected a finite number"]),
    (["evaluate", "--target-accuracy", "-Infinity"], ["'--target-accuracy': got -Infinity, expected a finite"]),
    (["serve", "--max-wait-ms", "inf"], ["'--max-wait-ms': got inf, expected a finite number"]),
    (["train", "--data", "sample", "--learning-rate", "1e999"], ["'--learning-rate': got 1e999, expected a finite"]),
])
def test_bad_input_is_one_line(args, fragments, tmp_path):
    assert_one_line_error(
        run(*args, *(["--runs-root", tmp_path] if args[0] != "models" and "--nope" not in args else [])), *fragments
    )


def test_every_number_option_refuses_what_is_not_finite():
    """nan is refused by every float option of every command, each given it on the command line (one wrapper
    put on them all as the app starts, not a check per option)."""
    import typer.main

    def floats(command, path):
        for name, sub in getattr(command, "commands", {}).items():
            yield from floats(sub, [*path, name])
        for param in getattr(command, "params", ()):
            if param.param_type_name == "option" and "float" in repr(param.type_descriptor.annotation):
                yield path, param.opts[0]

    found = list(floats(typer.main.get_command(app), []))
    assert len(found) >= 8 and {"predict", "evaluate", "serve", "train", "distill"} <= {p[0] for p, _ in found}
    for path, option in found:
        result = run(*path, option, "nan")
        assert result.exit_code == 2 and "got nan, expected a finite number" in result.output, (path, option)


def test_one_example_a_class_names_the_validation_part(tmp_path):
    """With --eval-data given, the part that cannot be held out is the validation part, and the error says so."""
    lone = tmp_path / "lone.csv"
    lone.write_text("text,label\n" + "".join(f"word{i} text,c{i}\n" for i in range(30)))
    result = run("train", "--data", f"csv:{lone}", "--eval-data", f"csv:{lone}", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "too few examples to hold out a validation part",
                          "the 30 it is drawn from are one of each of 30 classes")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("content, fragment", [
    ("", "data file is empty"),
    ('"1","a b","c"\n"3"\n', "line 2: expected label,title"),
    ('"1","a b","c"\n"9","x","y"\n', "line 2: label 9 is outside the class list (1..4 in"),
    ('"1","a b","c"\n"2","",""\n', "line 2: empty text"),
])
def test_bad_training_files_leave_no_complete_run(tmp_path, content, fragment):
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    (tmp_path / "bad.csv").write_text(content)
    result = run("train", "--data", f"csv:{tmp_path / 'bad.csv'}", "--runs-root", tmp_path / "runs", *TINY)
    assert_one_line_error(result, fragment, code=1)
    assert result.stderr.strip().count("\n") == 0  # bad data fails before any progress output
    assert not (tmp_path / "runs" / "latest").exists()


def test_eval_label_outside_training_classes(tmp_path, ag_files):
    train, _ = ag_files
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "eval.csv").write_text('"1","a","b"\n"2","c","d"\n"5","e","f"\n')
    result = run("train", "--data", f"csv:{train}", "--eval-data", f"csv:{tmp_path / 'e' / 'eval.csv'}",
                 "--runs-root", tmp_path / "runs", *TINY)
    assert_one_line_error(result, "eval.csv line 3", "label", code=1)


def test_empty_predict_text_and_incomplete_run(trained, tmp_path):
    root, _ = trained
    assert_one_line_error(run("predict", "   ", "--runs-root", root / "runs"), "text 1 is empty")
    assert_one_line_error(run("predict", "--runs-root", root / "runs"), "no text to classify")
    broken = tmp_path / "half"
    broken.mkdir()
    (broken / "run.json").write_text(json.dumps({"status": "running"}))
    assert_one_line_error(run("evaluate", broken), "is not complete (status: running)")
    (broken / "run.json").write_text("{not json")
    assert_one_line_error(run("predict", "x", "--run", broken), "run.json is unreadable")
    assert_one_line_error(run("evaluate", "--runs-root", tmp_path / "empty"), "no complete run under")


def test_nan_loss_marks_the_run_failed(tmp_path, ag_files, monkeypatch):
    from textclf._tf import keras, tf

    class Diverging(keras.losses.Loss):  # stands in for a run whose loss blows up
        def call(self, y_true, y_pred):
            return tf.reduce_mean(y_pred, axis=-1) * float("nan")

    monkeypatch.setattr(keras.losses, "SparseCategoricalCrossentropy", Diverging)
    train, evaluation = ag_files
    result = run("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}",
                 "--epochs", "3", "--runs-root", tmp_path / "runs", *TINY)
    assert_one_line_error(result, "loss became NaN", code=1)
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir()]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not (run_dir / "model.keras").exists() and not (tmp_path / "runs" / "latest").exists()


def test_help_is_fast_and_does_not_import_tensorflow():
    code = ("import sys; from textclf.cli import app; from typer.testing import CliRunner;"
            "r = CliRunner().invoke(app, ['train', '--help']); assert r.exit_code == 0, r.output;"
            "r = CliRunner().invoke(app, ['models', 'list']); assert r.exit_code == 0, r.output;"
            "print('tensorflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_console_script_error_has_no_traceback(tmp_path):
    env = {**os.environ, "COLUMNS": "60"}
    proc = subprocess.run(
        [sys.executable, "-m", "textclf", "train", "--data", f"csv:{tmp_path}/missing-" + "x" * 80 + ".csv"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr  # not wrapped at 60 columns
    assert proc.stderr.startswith("error: data file not found")


def test_data_and_name_mistakes_fail_before_tensorflow_loads(tmp_path):
    """A wrong column, a tab-separated file read as CSV, a header that is data, a misspelt model or
    experiment: one line saying what to do, and TensorFlow never imported (seconds saved per mistake)."""
    tsv = tmp_path / "s.tsv"
    tsv.write_text("sentence\tlabel\nit is good\t1\nbad movie\t0\n")
    headless = tmp_path / "n.csv"
    headless.write_text("a fine film,1\nawful,0\n")
    cases = [
        (["train", "--model", "transformer", "--data", f"tsv:{tsv}", "--text-field", "nope"],
         "no column 'nope' in the header (sentence, label)"),
        (["train", "--model", "transformer", "--data", f"csv:{tsv}"], f"looks tab-separated (its first line has no "
                                                                       f"comma but tabs); read it as tsv:{tsv}"),
        (["train", "--data", f"csv:{headless}"], "the first line looks like data, not a header (a fine film, 1)"),
        (["train", "--model", "ngram-mpl", "--data", "sample"], "unknown model 'ngram-mpl'; did you mean ngram-mlp"),
        (["train", "--model", "atuo", "--data", "sample"], "did you mean auto?"),
        (["train", "--experiment", "transformr", "--data", "sample"], "did you mean transformer"),
    ]
    for args, expected in cases:
        code = ("import sys; from textclf.cli import app; from typer.testing import CliRunner;"
                f"r = CliRunner().invoke(app, {args!r}); print(r.exit_code); print(r.output.strip().splitlines()[-1]);"
                "print('tensorflow' in sys.modules)")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
        exit_code, line, imported = out.stdout.strip().splitlines()[-3:]
        assert exit_code == "1" and line.startswith("error: ") and expected in line, (args, out.stdout)
        assert imported == "False", args


def test_the_summary_says_what_the_model_was_fitted_on():
    """train_examples (what was fitted) and train_class_counts (the training data, validation part included)
    differ when a part is held out: the summary gives both, so neither reads as a miscount."""
    from textclf.cli._render import train_cell

    counts = {"A": 3_000, "B": 3_000}
    assert train_cell({"train_examples": 6_000, "train_class_counts": counts}) == "6,000"
    assert train_cell({"train_examples": 5_400, "train_class_counts": counts}) == \
        "5,400 of 6,000 (600 held out for validation)"
    assert train_cell({"train_examples": 21_600, "train_class_counts": counts}) == \
        "21,600 (6,000 training texts and 15,600 the transfer set adds)"
    assert train_cell({"train_examples": 21_000, "train_class_counts": counts, "validation_examples": 600}) == \
        "21,000 (5,400 training texts and 15,600 the transfer set adds)"  # a student with a validation part
    assert train_cell({"train_examples": 90, "train_class_counts": {"A": 70, "B": 60}, "multilabel": True}) == "90"


def test_a_nul_in_a_text_is_read_as_a_space(trained, tmp_path):
    """TensorFlow's lower-casing (every model's) ends a text at a NUL: "Stocks\\0goal cup" was answered as
    "Stocks". A NUL is read as a space where texts enter: data files, predict, serve."""
    from textclf.data.sources import load_examples

    root, _ = trained
    path = tmp_path / "t.txt"
    path.write_bytes(b"shares\x00goal cup match striker\nshares goal cup match striker\n")
    rows = [json.loads(x) for x in run("predict", "--file", path, "--json", "--run", root / "runs" / "latest")
            .stdout.splitlines()]
    assert rows[0]["top_k"][0] == pytest.approx(rows[1]["top_k"][0])
    data = tmp_path / "d.csv"
    data.write_bytes(b"text,label\nshares\x00goal,A\nbank,B\n")
    assert list(load_examples(f"csv:{data}").texts) == ["shares goal", "bank"]


def test_predict_reads_a_named_pipe_once(trained, tmp_path):
    """`predict --file FIFO`: the pipe is opened once (opened and closed to check it first, its writer's lines
    went to that reader and the second open waited for a writer for ever)."""
    import threading

    root, _ = trained
    fifo = tmp_path / "lines.fifo"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("goal cup\n\x00\x00\nshares bank\n"), daemon=True)
    writer.start()
    result = run("predict", "--file", fifo, "--json", "--run", root / "runs" / "latest")
    writer.join(timeout=60)
    assert result.exit_code == 0, result.output
    rows = [json.loads(x) for x in result.stdout.splitlines()]
    assert [r["label"] is None for r in rows] == [False, True, False]  # a line of NULs is blank, as a blank line
