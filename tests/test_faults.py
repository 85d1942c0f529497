"""Issue 15's faults, one test each: what the user sees (one line, exit code) and what is left on disk."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import TINY, ag_rows, assert_one_line_error, cli, train_tiny, write_csv

TEXTCLF = Path(sys.executable).with_name("textclf")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    train_tiny(root, 20, epochs=1)
    return root, Path(os.path.realpath(root / "runs" / "latest"))


# ---- data


def test_headerless_ag_labels_written_as_floats_are_class_indices(tmp_path):
    from textclf.data.sources import load_examples

    path = tmp_path / "ag.csv"
    path.write_text('"3.0","Stocks rally","Shares rose"\n"1.0","Troops move","The army"\n"3","Oil up","Prices"\n')
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    ex = load_examples(f"csv:{path}")
    assert [ex.label_names[i] for i in ex.labels] == ["Business", "World", "Business"]


def test_a_csv_field_longer_than_pythons_default_limit_is_read(tmp_path):
    from textclf.data.sources import load_examples

    long_text = "word " * 60_000  # 300 KB: Python's csv stops at 128 KB by default
    path = tmp_path / "long.csv"
    path.write_text(f'label,text\nx,"{long_text}"\ny,short\n')
    ex = load_examples(f"csv:{path}")
    assert len(ex.texts[0]) == len(long_text.strip())


def test_a_csv_field_over_the_limit_is_named_too_long(tmp_path, monkeypatch):
    import textclf.data.sources as sources

    monkeypatch.setattr(sources, "CSV_FIELD_LIMIT", 1 << 20)
    path = tmp_path / "long.csv"
    path.write_text('label,text\nx,"' + "a" * (2 << 20) + '"\n')
    with pytest.raises(sources.DataError, match="line 2: a field is longer than 1 MiB"):
        sources.load_examples(f"csv:{path}")
    import csv

    csv.field_size_limit(sources.CSV_FIELD_LIMIT)


def test_one_huge_text_does_not_pad_every_text_to_its_length():
    """20 MB in one of 300 texts: numpy's astype(str) made 300 × 20M × 4 bytes (24 GB) of them."""
    from textclf.config import resolve_config
    from textclf.models.catalog import MODELS

    texts = np.array(["short text %d" % i for i in range(300)] + ["long " * 4_000_000], dtype=object)
    params = resolve_config({"model": "transformer", "model_params": {"max_length": 16, "vocab_size": 100,
                                                                      "embed_dim": 8, "ff_dim": 8}}).model_params
    built = MODELS.get("transformer").load_builder()(params, num_classes=2, train_texts=texts)
    assert built.model is not None


def test_memory_exhaustion_is_one_line(monkeypatch, tmp_path):
    import textclf.training.run as training  # where run_training finds _load_data

    def exhausted(*args, **kwargs):
        raise MemoryError()

    monkeypatch.setattr(training, "_load_data", exhausted)
    result = cli("train", "--data", "sample", "--model", "transformer", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "out of memory", code=1)


def test_tensorflow_resource_exhaustion_is_one_line(capsys):
    from textclf.cli import _click_exit

    class ResourceExhaustedError(Exception):
        pass

    assert _click_exit(ResourceExhaustedError("OOM when allocating tensor with shape[1000000000,32]")) == 1
    assert _click_exit(ResourceExhaustedError("SaveV2: No space left on device")) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("error: out of memory: the model does not fit")
    assert lines[1] == "error: cannot write: no space left on device"


# ---- model store


def test_a_read_only_model_store_fails_before_reading_the_checkpoint(tmp_path, monkeypatch):
    import textclf.models.bert.hf_import as hf_import

    home = tmp_path / "home"
    (home / "models").mkdir(parents=True)
    read = []
    monkeypatch.setattr(hf_import, "read_hf_config", lambda src: read.append(src) or {})
    monkeypatch.setattr(Path, "mkdir", _refuse_under(home / "models", Path.mkdir))
    import tempfile

    real_mkdtemp = tempfile.mkdtemp
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: _raise_eacces() if str(k.get("dir", "")).startswith(
        str(home)) else real_mkdtemp(*a, **k))
    result = cli("models", "import-hf", tmp_path, "--name", "m", env={"TEXTCLF_HOME": str(home)})
    assert_one_line_error(result, "model store", "not writable", "TEXTCLF_HOME")
    assert read == []


def _raise_eacces():
    raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))


def _refuse_under(root: Path, real):
    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(root)) and self != root:
            _raise_eacces()
        return real(self, *args, **kwargs)
    return mkdir


def test_stale_staging_folders_of_dead_imports_are_removed(tmp_path, monkeypatch):
    from textclf.models import store

    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path))
    models = tmp_path / "models"
    dead = models / ".minilm.999999999.abcd"
    live = models / f".other.{os.getpid()}.efgh"
    for folder in (dead, live):
        (folder / "encoder").mkdir(parents=True)
    staging = store.prepare("minilm")
    assert not dead.exists() and live.exists() and staging.is_dir()
    assert store.list_models() == []  # staging folders are never listed as models


# ---- run files


def test_one_damaged_run_json_does_not_break_runs_list(trained, tmp_path):
    import shutil

    _, run = trained
    root = tmp_path / "runs"
    for name, edit in (("good", {}), ("named-7", {"name": 7}), ("bad-pid", {"status": "running", "pid": "x"})):
        shutil.copytree(run, root / name)
        info = json.loads((root / name / "run.json").read_text())
        info.update(edit)
        (root / name / "run.json").write_text(json.dumps(info))
    result = cli("runs", "list", "--runs-root", root, "--json")
    assert result.exit_code == 0, result.output
    rows = {r["path"].rsplit("/", 1)[-1]: r for r in map(json.loads, result.stdout.splitlines())}
    assert rows["named-7"]["name"] == "named-7" and rows["good"]["status"] == "complete"  # the folder names it
    assert rows["bad-pid"]["status"] == "interrupted"  # no process can be writing it
    assert cli("runs", "list", "--runs-root", root).exit_code == 0


# ---- disk full


def test_disk_full_while_checkpointing_marks_the_run_failed(tmp_path, monkeypatch):
    from textclf._tf import tf

    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(10, seed=1))

    def full(self, *args, **kwargs):
        raise tf.errors.ResourceExhaustedError(None, None, "SaveV2: ckpt-1.data; No space left on device")

    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    result = cli("train", "--data", f"csv:{train}", "--epochs", 2, "--runs-root", tmp_path / "runs", *TINY)
    assert_one_line_error(result, "cannot write the run", "No space left on device", code=1)
    [run] = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    assert json.loads((run / "run.json").read_text())["status"] == "failed"


def test_disk_full_while_saving_the_model_leaves_no_temp_file(tmp_path, monkeypatch):
    from textclf._tf import keras

    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(10, seed=1))

    def full(self, path, *args, **kwargs):
        Path(path).write_bytes(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(keras.Model, "save", full)
    result = cli("train", "--data", f"csv:{train}", "--epochs", 1, "--runs-root", tmp_path / "runs", *TINY)
    assert_one_line_error(result, "cannot write the run", "No space left on device", code=1)
    [run] = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    assert json.loads((run / "run.json").read_text())["status"] == "failed"
    assert not list(run.glob(".*tmp*")) and not (run / "model.keras").exists()
    assert not (tmp_path / "runs" / "latest").exists()


# ---- signals and logs


def _train_cmd(tmp_path: Path, epochs: int) -> list[str]:
    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(20, seed=1))
    return [str(TEXTCLF), "train", "--data", f"csv:{train}", "--epochs", str(epochs), "--patience", "0",
            "--runs-root", str(tmp_path / "runs"), *[str(a) for a in TINY]]


def _wait_for(predicate, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_ends_training_with_one_line_and_a_resumable_run(tmp_path, sig, code, word):
    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_train_cmd(tmp_path, 400), stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: "epoch 2/400" in log.read_text())
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == code
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("error:")]
    [run] = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    assert lines == [f"error: {word}; resume with textclf train --resume {run}"]
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "interrupted" and info["error"] == "interrupted"
    assert (run / "checkpoints" / "progress.json").exists()


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
@pytest.mark.parametrize("after", [0.6, 1.5])  # while the CLI's or TensorFlow's modules load
def test_a_signal_before_training_is_one_line_too(tmp_path, sig, code, word, after):
    """Typer turns a KeyboardInterrupt inside a command into a silent exit 130, also for SIGTERM; and a
    signal during the CLI's own imports would be a traceback. Any moment: one line, 130 / 143."""
    proc = subprocess.Popen(_train_cmd(tmp_path, 400), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err + out
    [line] = [ln for ln in err.splitlines() if ln.strip()][-1:]
    assert line.startswith(f"error: {word}")
    for run in (tmp_path / "runs").glob("2*"):  # a run started before the signal is not left looking complete
        assert json.loads((run / "run.json").read_text())["status"] != "complete"


def test_help_screens_name_values_instead_of_python_types():
    """`--epochs N`, `--data SPEC`, flags with no value: never Typer's `<str>` / `<bool>` / `<int>`."""
    for command in (["train"], ["evaluate"], ["predict"], ["runs", "compare"], ["data", "stats"], ["tune"]):
        text = cli(*command, "--help", env={"COLUMNS": "100"}).output
        assert not re.search(r"<(str|bool|int|float|list|path)", text), (command, text)
        if command == ["train"]:
            rows = {line.split()[1]: line for line in text.splitlines() if line.startswith("│ --")}
            assert rows["--epochs"].split()[2] == "N" and rows["--data"].split()[2] == "SPEC"
            assert rows["--learning-rate"].split()[2] == "X" and rows["--per-replica-batch-size"].split()[2] == "N"
            assert rows["--restore-best"].split()[2] == "--no-restore-best" and rows["--help"].split()[3] == "Show"


def test_a_ctrl_c_run_is_listed_interrupted_and_can_be_extended(tmp_path):
    """A Ctrl-C'd run: listed `interrupted` with the epochs it completed and the command that continues
    it; resumed by a short name with --epochs N it trains on to N epochs, then no longer says interrupted."""
    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_train_cmd(tmp_path, 400), stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: "epoch 2/400" in log.read_text())
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    [run] = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    root = tmp_path / "runs"
    [row] = [json.loads(line) for line in cli("runs", "list", "--json", "--runs-root", root).stdout.splitlines()]
    done = row["epochs"]
    assert row["status"] == "interrupted" and done >= 2
    listed = cli("runs", "list", "--runs-root", root).stdout
    assert f"continue with textclf train --resume {run.name} --runs-root {root}" in " ".join(listed.split())
    result = cli("train", "--resume", "transformer", "--epochs", str(done + 2), "--runs-root", root)  # the model's name
    assert result.exit_code == 0, result.output
    assert f"training {run.name} to {done + 2} epochs instead of 400 ({done} done)" in result.output
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "complete" and "error" not in info and info["resumed"] == 1
    assert len(json.loads((run / "history.json").read_text())["loss"]) == done + 2
    assert json.loads((run / "config.json").read_text())["training"]["epochs"] == done + 2
    refused = cli("train", "--resume", run, "--epochs", str(done + 5))
    assert refused.exit_code == 1 and "is complete, and a complete run keeps no checkpoint" in refused.output


def test_a_log_shows_each_epoch_when_it_ends(tmp_path):
    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_train_cmd(tmp_path, 400), stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: "epoch 3/400" in log.read_text())
        alive = proc.poll() is None
        proc.kill()
        proc.wait()
    assert alive  # the lines were there while the run was still training
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("epoch 1/400")]
    assert len(lines) == 1 and "val_accuracy" in lines[0] and lines[0].endswith(" s")
    assert "━" not in log.read_text()  # no progress bars in a log


# ---- predict


def test_predict_keeps_one_output_per_input_line(trained, tmp_path):
    _, run = trained
    texts = tmp_path / "in.txt"
    texts.write_text("stocks rally\n\nthe match ended\n   \nnew phone\n")
    result = cli("predict", "--file", texts, "--run", run, "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["stocks rally", "", "the match ended", "", "new phone"]
    assert [r["label"] is None for r in rows] == [False, True, False, True, False]
    stdin = cli("predict", "-", "--run", run, "--json", input="stocks rally\nnew phone\n")
    assert stdin.exit_code == 0, stdin.output
    assert [json.loads(line)["text"] for line in stdin.stdout.splitlines()] == ["stocks rally", "new phone"]


# ---- conventions


def test_version_bare_command_and_completion():
    from textclf import __version__

    assert cli("--version").stdout.strip() == f"textclf {__version__}"
    bare = cli()
    assert bare.exit_code == 0 and "Usage" in bare.stdout and "error" not in bare.output
    assert "--install-completion" in cli("--help").stdout


def test_a_broken_pipe_exits_quietly(trained, tmp_path):
    """`textclf … | head` ends textclf with 0 and nothing on stderr, as JSON lines or a table (rich's own
    handling exited 1, and click's too): under `set -o pipefail` the pipeline's status is textclf's."""
    texts = tmp_path / "many.txt"
    texts.write_text("goal cup match\n" * 50_000)
    _, run = trained
    for command in (f"{TEXTCLF} predict --file {texts} --json --run {run} | head -1",
                    f"{TEXTCLF} predict --file {texts} --run {run} | head -3"):
        proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command} >/dev/null"], capture_output=True,
                              text=True)
        assert (proc.returncode, proc.stderr) == (0, ""), command


# ---- exports


def test_tflite_export_states_its_tokenizer_rules_and_they_are_exact(trained, tmp_path):
    import re

    _, run = trained
    out = tmp_path / "tfl"
    result = cli("export", run, "--format", "tflite", "--out", out)
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "textclf-export.json").read_text())
    tok = meta["tokenizer"]
    assert tok["rules"] and any("U+00A0" in r for r in tok["rules"])
    vocab = {w: i for i, w in enumerate((out / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1])}

    def by_the_rules(text: str) -> list[int]:  # written from the stated rules, not from Keras
        text = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
        text = re.sub(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~']", "", text)
        tokens = re.split(r"[ \t\n\r\v\f]+", text.strip(" \t\n\r\v\f"))
        ids = [vocab.get(t, 1) for t in tokens if t][: tok["max_length"]]
        return ids or [1]

    assert len(tok["test_vectors"]) >= 4
    for vector in tok["test_vectors"]:
        assert by_the_rules(vector["text"]) == vector["token_ids"], vector
    assert meta["requires"] == ["tflite runtime (built-in ops only)"]


def test_saved_model_export_is_a_shared_folder_and_says_what_it_needs(trained, tmp_path):
    from textclf.export import _uses_text_ops

    _, run = trained
    old = os.umask(0o022)
    try:
        out = tmp_path / "sm"
        result = cli("export", run, "--out", out)
        assert result.exit_code == 0
        steps = [f"loading the model of {run.name}…", "tracing and saving the serving model…"]
        assert result.stderr.splitlines() == steps
    finally:
        os.umask(old)
    assert oct(out.stat().st_mode & 0o777) == oct(0o755)
    assert json.loads((out / "textclf-export.json").read_text())["requires"] == ["tensorflow"]
    assert _uses_text_ops({"model": "bert-small"}) and not _uses_text_ops({"model": "transformer"})


def test_evaluate_reports_progress_while_it_predicts(trained, monkeypatch):
    """A large eval set is not a silent minute: when piped, a line per interval with the texts done."""
    from textclf.cli._render import ProgressListener

    _, run = trained
    monkeypatch.setattr(ProgressListener, "WORK_EVERY", 0.0)
    monkeypatch.setattr("textclf.prediction.PREDICT_BATCH", 2)  # several batches of the tiny eval set
    result = cli("evaluate", run, "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == f"loading the model of {run.name}…"  # after the data is checked
    lines = [line for line in result.stderr.splitlines() if line.startswith("predicting ")]
    total = json.loads(result.stdout)["examples"]
    assert len(lines) >= 2 and lines[-1].startswith(f"predicting {total} texts: {total}/{total} (100%)")


# ---- comparisons and plots


def test_duration_is_never_ranked(trained, tmp_path):
    import shutil

    _, run = trained
    for name in ("a", "b"):
        shutil.copytree(run, tmp_path / name)
    info = json.loads((tmp_path / "b" / "run.json").read_text())
    info["duration_seconds"] = 0.001
    (tmp_path / "b" / "run.json").write_text(json.dumps(info))
    data = json.loads(cli("runs", "compare", tmp_path / "a", tmp_path / "b", "--json").stdout)
    assert "duration_seconds" not in data["best"]


def test_learning_curves_have_whole_epoch_ticks(monkeypatch):
    import textclf.reports as reports

    figures = []
    monkeypatch.setattr(reports, "_png", lambda fig: figures.append(fig) or b"")
    reports.learning_curves_png({"loss": [0.9, 0.5, 0.4], "val_loss": [1.0, 0.7, 0.6],
                                 "accuracy": [0.5, 0.7, 0.8], "val_accuracy": [0.4, 0.6, 0.7]})
    for ax in figures[0].axes:
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), ticks


def test_a_label_outside_a_runs_classes_names_the_runs_labels_not_classes_txt(tmp_path):
    from textclf.data.sources import DataError, load_examples

    path = tmp_path / "eval.csv"
    path.write_text("label,text\nWorld,a\nOther,b\n")
    with pytest.raises(
        DataError, match=r"line 3: label 'Other' is not one of the classes in the training data or run \(labels.json\)"
    ):
        load_examples(f"csv:{path}", label_names=["World", "Sports"])


def test_evaluate_reads_other_columns_with_the_options_its_error_names(trained, tmp_path):
    """The missing-column error names --label-field / --text-field: evaluate has them, for --data."""
    _, run = trained
    labels = json.loads((run / "labels.json").read_text())
    other = tmp_path / "other.csv"
    other.write_text("sentiment,body\n" + "".join(f"{label},some words about {label}\n" for label in labels))
    missing = cli("evaluate", run, "--data", f"csv:{other}")
    assert_one_line_error(missing, "no 'label' column", "--label-field", code=1)
    result = cli("evaluate", run, "--data", f"csv:{other}", "--label-field", "sentiment", "--text-field", "body",
                 "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["examples"] == len(labels)
    assert_one_line_error(cli("evaluate", run, "--label-field", "sentiment"), "give --data too", code=1)


def test_a_run_being_resumed_elsewhere_is_not_resumed_twice(tmp_path):
    """Two resumes of one interrupted run at once: the second stops with one line and leaves the run as
    it was (the first holds the run directory's lock from before its status check to its end)."""
    import fcntl

    from textclf.runs import LOCK_FILE

    log = tmp_path / "log"
    with open(log, "w") as out:
        proc = subprocess.Popen(_train_cmd(tmp_path, 400), stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: "epoch 2/400" in log.read_text())
        [run] = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
        with open(run / LOCK_FILE) as probe, pytest.raises(BlockingIOError):  # the training process holds it
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    before = {name: (run / name).read_text() for name in ("run.json", "config.json")}
    epochs = str(json.loads((run / "checkpoints" / "progress.json").read_text())["epochs_done"] + 1)
    with open(run / LOCK_FILE, "a") as held:  # what a resume in another process holds while it trains
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = cli("train", "--resume", run, "--epochs", epochs)
        assert_one_line_error(result, f"run {run} is being trained by another process", code=1)
        assert {name: (run / name).read_text() for name in before} == before  # not even the extension
    result = cli("train", "--resume", run, "--epochs", epochs)  # once it is free
    assert result.exit_code == 0, result.output
    assert json.loads((run / "run.json").read_text())["status"] == "complete"


def test_a_model_without_epochs_is_not_extended_in_epochs(tmp_path):
    """ngram-linear is fitted by LIBLINEAR: --epochs on its resume is refused, and an interrupted one's
    `runs list` hint does not offer it."""
    from textclf import runs

    train = write_csv(tmp_path / "ag" / "train.csv", ag_rows(20, seed=1))
    root = tmp_path / "runs"
    with pytest.raises(Exception):
        with runs.start(root, "ngram-linear", {"model": "ngram-linear", "data": {"train": f"csv:{train}"}},
                        ["a", "b"], model="ngram-linear"):
            raise KeyboardInterrupt
    [run] = [p for p in root.iterdir() if not p.is_symlink()]
    assert json.loads((run / "run.json").read_text())["status"] == "interrupted"
    assert_one_line_error(cli("train", "--resume", run, "--epochs", "5"), "fitted by its solver, not in epochs",
                          code=1)
    listed = " ".join(cli("runs", "list", "--runs-root", root).stdout.split())
    assert f"continue with textclf train --resume {run.name} --runs-root {root}" in listed and "--epochs" not in listed


def test_a_sigterm_where_python_swallows_exceptions_is_raised_at_the_next_batch():
    """A SIGTERM landing in a weakref callback (here a function called from one) would be printed as "Exception
    ignored" and lost (a probe's `train --seeds 3` then ran on and exited 0): it is raised at the next safe
    point, once; and a command that would then end in success ends `terminated` (textclf.__main__)."""
    import gc
    import os
    import weakref

    from textclf import __main__ as entry
    from textclf.callbacks import NanGuard
    from textclf.errors import Terminated, raise_deferred_termination, termination_pending

    class Thing:
        pass

    def inner():
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(1000):  # the handler runs between bytecodes, here
            pass

    previous = signal.signal(signal.SIGTERM, entry._terminate)
    try:
        thing = Thing()
        weakref.finalize(thing, lambda: inner())
        del thing
        gc.collect()
        assert termination_pending()  # swallowed where it landed, kept
        with pytest.raises(Terminated):
            NanGuard().on_train_batch_end(0, {"loss": 1.0})
        raise_deferred_termination()  # raised once only
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # a second SIGTERM now ends the process
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_an_unreadable_model_store_is_one_line_and_builtin_models_still_train(tmp_path, monkeypatch):
    from pathlib import Path

    from textclf.config import resolve_config
    from textclf.errors import ModelError
    from textclf.models import store

    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "models").mkdir(parents=True)
    real = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if self == store.models_dir() else real(self))
    with pytest.raises(ModelError, match=r"cannot read the model store .*models \(Permission denied\); set "
                                         r"TEXTCLF_HOME"):
        store.list_models()
    assert resolve_config({"model": "transformer"}).model == "transformer"  # no need of the store
    with pytest.raises(ModelError, match="cannot read the model store"):
        resolve_config({"model": "my-import"})


def test_a_command_ending_well_after_a_swallowed_sigterm_says_terminated(monkeypatch, capsys):
    import sys

    from textclf import __main__ as entry
    from textclf import cli, errors

    def succeeds_after_a_sigterm():
        errors.defer_termination()  # what the handler records where its raise was swallowed
        sys.exit(0)

    monkeypatch.setattr(cli, "main", succeeds_after_a_sigterm)
    monkeypatch.setattr(errors, "_DEFERRED", [])
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as done:
            entry.main()
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert done.value.code == 143 and capsys.readouterr().err.strip() == "error: terminated"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_or_closed_standard_stream_is_one_line_or_nothing(trained):
    """stdout on /dev/full: one line, exit 1 (it was "unexpected OSError"); stdout or stdin closed (`>&-`, `<&-`):
    the command runs as if they were /dev/null (a closed stdout failed at import with a traceback)."""
    _, run = trained
    for command in (f"{TEXTCLF} predict --run {run} Stocks", f"{TEXTCLF} runs list --runs-root {run.parent}",
                    f"{TEXTCLF} --version"):
        full = subprocess.run(["bash", "-c", f"{command} >/dev/full"], capture_output=True, text=True)
        assert (full.returncode, full.stderr.strip().splitlines()[-1]) == (
            1, "error: cannot write: No space left on device"), command
        closed = subprocess.run(["bash", "-c", f"{command} >&-"], capture_output=True, text=True)
        assert (closed.returncode, closed.stderr) == (0, ""), command
    nothing = subprocess.run(["bash", "-c", f"{TEXTCLF} predict --run {run} - <&-"], capture_output=True, text=True)
    assert nothing.returncode == 1 and nothing.stderr.startswith("error: no text to classify"), nothing.stderr
