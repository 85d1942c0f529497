"""Reliability table: bad input through the real CLI -> one readable line, exit != 0, no
traceback, and no run marked complete that is not."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import TINY, assert_one_line_error, train_tiny
from conftest import cli as run
from textclf import runs as runs_module
from textclf.runs import is_complete


def no_false_complete(root: Path) -> None:
    """Every run that says complete has everything a complete run has."""
    for path in root.rglob("run.json"):
        info = json.loads(path.read_text())
        if info.get("status") == "complete":
            assert {"model.keras", "metrics.json", "history.json", "config.json"} <= {p.name for p in path.parent.iterdir()}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("reliability")
    train = train_tiny(root, 20, epochs=1)
    (root / "exp.yaml").write_text("experiments:\n  a: {model: transformer}\n  b: {model: transformer}\n")
    return root, train, Path(os.path.realpath(root / "runs" / "latest"))


@pytest.fixture
def copy_of_run(base, tmp_path):
    """A private copy of the trained run, to break."""
    _, _, latest = base
    target = tmp_path / "runs" / latest.name
    shutil.copytree(latest, target)
    return target


@pytest.fixture
def readonly_dir(tmp_path):
    """A directory nobody may write to (root included: the immutable attribute)."""
    path = tmp_path / "readonly"
    path.mkdir()
    if os.geteuid() != 0:
        path.chmod(0o555)
        yield path
        path.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("running as root and `chattr +i` is unavailable: cannot make a read-only directory")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=False)


def _csv(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    return path


LATIN1 = b'"1","caf\xe9","x"\n'
SHORT_ROW = b'label,title,text\n1,a,b\n2,c\n'
LABEL_7 = b'"1","a","b"\n"7","c","d"\n'

CASES = {
    # name: (setup(tmp_path, base) -> args, expected fragments)
    "bad yaml": (lambda t, b: ["train", "--experiment", "a", "--experiments-file",
                                _write(t / "x.yaml", "experiments:\n  a: {model: [\n")],
                 ["x.yaml", "invalid YAML", "line"]),
    "yaml wrong type": (lambda t, b: ["experiments", "list", "--experiments-file",
                                      _write(t / "x.yaml", "experiments:\n  a: {training: {epochs: 1.5}}\n")],
                        ["experiments.a", "training.epochs", "1.5", "integer"]),
    "non-UTF-8 yaml": (lambda t, b: ["experiments", "list", "--experiments-file",
                                     _write(t / "x.yaml", b"experiments:\n  a: {description: caf\xe9}\n")],
                       ["x.yaml line 2", "not valid UTF-8"]),
    "unknown experiment": (lambda t, b: ["experiments", "run", "nope", "--experiments-file", b[0] / "exp.yaml"],
                           ["unknown experiment 'nope'", "available: a, b"]),
    "missing experiments file": (lambda t, b: ["train", "--experiment", "a", "--experiments-file", t / "none.yaml"],
                                 ["experiments file not found"]),
    "names and --all": (lambda t, b: ["experiments", "run", "a", "--all", "--experiments-file", b[0] / "exp.yaml"],
                        ["names or --all, not both"]),
    "resume with other options": (lambda t, b: ["train", "--resume", b[2], "--learning-rate", "1e-3"],
                                  ["continues it with its saved config", "drop the other config options",
                                   "training.learning_rate"]),
    "bad --set": (lambda t, b: ["train", "--data", "sample", "--set", "training.epochs"], ["KEY=VALUE"]),
    "unknown --set key": (lambda t, b: ["train", "--data", "sample", "--set", "training.epoks=2"],
                          ["training.epoks: unknown key"]),
    "negative patience": (lambda t, b: ["train", "--data", "sample", "--patience", "-1"], ["patience", "-1"]),
    "non-UTF-8 csv": (lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "l.csv", LATIN1)),
                                    "--runs-root", t / "runs"], ["line 1", "not valid UTF-8"]),
    "csv short row": (lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "s.csv", SHORT_ROW)),
                                    "--runs-root", t / "runs"], ["line 3", "expected 3 fields"]),
    "label out of range": (lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "r.csv", LABEL_7)),
                                         "--runs-root", t / "runs"], ["line 2", "7"]),
    "empty file": (lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "e.csv", b"")), "--runs-root", t / "runs"],
                   ["empty"]),
    "unknown run for compare": (lambda t, b: ["runs", "compare", b[2], t / "gone", "--runs-root", b[0] / "runs"],
                                ["run not found", "gone"]),
    "report into a missing folder": (lambda t, b: ["report", "--runs-root", b[0] / "runs", "--out", t / "no" / "r.html"],
                                     ["does not exist"]),
    "plot with a wrong suffix": (lambda t, b: ["evaluate", b[2], "--plot", t / "cm.jpg"], [".png"]),
    "export an unknown run": (lambda t, b: ["export", t / "nothing", "--out", t / "e"], ["not found"]),
}


def _write(path: Path, text) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_table(name, base, tmp_path):
    setup, fragments = CASES[name]
    result = run(*setup(tmp_path, base))
    assert_one_line_error(result, *fragments)
    no_false_complete(tmp_path)
    assert not list(tmp_path.rglob("model.keras"))


def test_corrupted_model_file(copy_of_run):
    (copy_of_run / "model.keras").write_bytes(b"PK\x03\x04 truncated")
    assert_one_line_error(run("predict", "hello world", "--run", copy_of_run), "cannot load the model")
    assert_one_line_error(run("export", copy_of_run, "--out", copy_of_run.parent / "exp"), "cannot load the model")
    assert not (copy_of_run.parent / "exp").exists()


def test_run_saved_with_a_layer_this_version_lacks(copy_of_run):
    """A run saved by another textclf version (a layer since renamed): say so instead of Keras's TypeError."""
    import zipfile

    model = copy_of_run / "model.keras"
    with zipfile.ZipFile(model) as old:
        entries = {name: old.read(name) for name in old.namelist()}
    entries["config.json"] = entries["config.json"].replace(b'"textclf>SequenceIds"', b'"textclf>Standardize"')
    with zipfile.ZipFile(model, "w") as new:
        for name, data in entries.items():
            new.writestr(name, data)
    assert_one_line_error(run("predict", "hello world", "--run", copy_of_run),
                          "textclf>Standardize", "another version", "retrain")


def test_corrupted_run_json_and_labels(copy_of_run):
    (copy_of_run / "labels.json").write_text('{"not": "a list"')
    assert_one_line_error(run("predict", "hello", "--run", copy_of_run), "labels.json", "unreadable")
    (copy_of_run / "run.json").write_text("garbage")
    assert_one_line_error(run("evaluate", copy_of_run), "run.json", "unreadable")


def test_read_only_runs_folder(base, readonly_dir):
    _, train, _ = base
    result = run("train", "--data", f"csv:{train}", "--epochs", "1", "--runs-root", readonly_dir, *TINY)
    assert_one_line_error(result, "cannot create a run directory", str(readonly_dir))
    assert list(readonly_dir.iterdir()) == []


def test_read_only_export_and_report_destinations(base, readonly_dir):
    root, _, latest = base
    assert_one_line_error(run("export", latest, "--out", readonly_dir / "e"), "cannot write")
    assert_one_line_error(run("report", latest, "--out", readonly_dir / "r.html"), "cannot write")
    assert_one_line_error(run("evaluate", latest, "--plot", readonly_dir / "cm.png"), "cannot write")
    assert list(readonly_dir.iterdir()) == []


def test_disk_full_while_saving_leaves_a_failed_run(base, tmp_path, monkeypatch):
    _, train, _ = base
    real = runs_module.write_bytes

    def full_disk(path, data):
        if Path(path).name == "metrics.json":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data)

    monkeypatch.setattr(runs_module, "write_bytes", full_disk)
    result = run("train", "--data", f"csv:{train}", "--epochs", "1", "--runs-root", tmp_path / "runs", *TINY)
    assert_one_line_error(result, "cannot write the run", "No space left on device")
    [run_dir] = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    assert json.loads((run_dir / "run.json").read_text())["status"] == "failed"
    assert not is_complete(run_dir) and not (tmp_path / "runs" / "latest").exists()


def test_run_deleted_while_listing_is_skipped_not_fatal(base, tmp_path, monkeypatch):
    _, _, latest = base
    root = tmp_path / "runs"
    for name in ("one", "two"):
        shutil.copytree(latest, root / name)
    real_status = runs_module.status

    def vanish(info):  # `two` disappears after the folder was scanned
        shutil.rmtree(root / "two", ignore_errors=True)
        return real_status(info)

    monkeypatch.setattr(runs_module, "status", vanish)
    result = run("runs", "list", "--runs-root", root, "--json")
    assert result.exit_code == 0 and "Traceback" not in result.output
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert "two" not in names or not (root / "two").exists()
    monkeypatch.setattr(runs_module, "status", real_status)
    # comparing a run that is gone: one line
    assert_one_line_error(run("runs", "compare", root / "one", root / "two"), "run not found")
