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
        try:
            info = json.loads(path.read_text())
        except ValueError:
            continue  # a damaged run.json says nothing is complete
        if isinstance(info, dict) and info.get("status") == "complete":
            assert {"model.keras", "metrics.json", "history.json", "config.json"} <= {
                p.name for p in path.parent.iterdir()
            }


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
    "bad yaml": (
        lambda t, b: [
            "train",
            "--experiment",
            "a",
            "--experiments-file",
            _write(t / "x.yaml", "experiments:\n  a: {model: [\n"),
        ],
        ["x.yaml", "invalid YAML", "line"],
    ),
    "yaml wrong type": (
        lambda t, b: [
            "experiments",
            "list",
            "--experiments-file",
            _write(t / "x.yaml", "experiments:\n  a: {training: {epochs: 1.5}}\n"),
        ],
        ["experiments.a", "training.epochs", "1.5", "integer"],
    ),
    "non-UTF-8 yaml": (
        lambda t, b: [
            "experiments",
            "list",
            "--experiments-file",
            _write(t / "x.yaml", b"experiments:\n  a: {description: caf\xe9}\n"),
        ],
        ["x.yaml line 2", "not valid UTF-8"],
    ),
    "unknown experiment": (
        lambda t, b: ["experiments", "run", "nope", "--experiments-file", b[0] / "exp.yaml"],
        ["unknown experiment 'nope'", "available: a, b"],
    ),
    "missing experiments file": (
        lambda t, b: ["train", "--experiment", "a", "--experiments-file", t / "none.yaml"],
        ["experiments file not found"],
    ),
    "names and --all": (
        lambda t, b: ["experiments", "run", "a", "--all", "--experiments-file", b[0] / "exp.yaml"],
        ["names or --all, not both"],
    ),
    "resume with other options": (
        lambda t, b: ["train", "--resume", b[2], "--learning-rate", "1e-3"],
        ["continues it with its saved config", "drop the other config options", "training.learning_rate"],
    ),
    "bad --set": (lambda t, b: ["train", "--data", "sample", "--set", "training.epochs"], ["KEY=VALUE"]),
    "unknown --set key": (
        lambda t, b: ["train", "--data", "sample", "--set", "training.epoks=2"],
        ["training.epoks: unknown key"],
    ),
    "negative patience": (lambda t, b: ["train", "--data", "sample", "--patience", "-1"], ["patience", "-1"]),
    "non-UTF-8 csv": (
        lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "l.csv", LATIN1)), "--runs-root", t / "runs"],
        ["line 1", "not valid UTF-8"],
    ),
    "csv short row": (
        lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "s.csv", SHORT_ROW)), "--runs-root", t / "runs"],
        ["line 3", "expected 3 fields"],
    ),
    "label out of range": (
        lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "r.csv", LABEL_7)), "--runs-root", t / "runs"],
        ["line 2", "7"],
    ),
    "empty file": (
        lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "e.csv", b"")), "--runs-root", t / "runs"],
        ["empty"],
    ),
    "unknown run for compare": (
        lambda t, b: ["runs", "compare", b[2], t / "gone", "--runs-root", b[0] / "runs"],
        ["run not found", "gone"],
    ),
    "report into a missing folder": (
        lambda t, b: ["report", "--runs-root", b[0] / "runs", "--out", t / "no" / "r.html"],
        ["does not exist"],
    ),
    "plot with a wrong suffix": (lambda t, b: ["evaluate", b[2], "--plot", t / "cm.jpg"], [".png"]),
    "export an unknown run": (lambda t, b: ["export", t / "nothing", "--out", t / "e"], ["not found"]),
}


def _write(path: Path, text) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def _data(t: Path, name: str, text) -> str:
    """A data spec of a file written in a folder of its own (no classes.txt beside it)."""
    kind = name.rsplit(".", 2)[1] if name.endswith(".gz") else name.rsplit(".", 1)[1]
    return f"{kind}:{_write(t / 'd' / name, text)}"


def _train_on(name: str, data, *extra) -> "callable":
    """A case's setup: `textclf train` on a data file `name` holding `data` (and `extra` options)."""
    return lambda t, b: ["train", "--data", _data(t, name, data), "--runs-root", t / "runs", *extra]


def _gz(data: bytes, damage: str) -> bytes:
    import gzip

    packed = bytearray(gzip.compress(data * 50))
    if damage == "deflate":
        packed[20:40] = b"\xff" * 20  # inside the deflate stream
        return bytes(packed)
    return bytes(packed[: len(packed) // 2])  # truncated


def _run_copy(t: Path, b, edit=None) -> Path:
    """A copy of the trained run under t/runs, changed by edit(path)."""
    target = t / "runs" / b[2].name
    shutil.copytree(b[2], target)
    if edit:
        edit(target)
    return target


def _resumable_copy(t: Path, b, damage) -> Path:
    """A copy of the trained run that looks interrupted after epoch 1, with its checkpoint damaged."""
    target = _run_copy(t, b)
    info = json.loads((target / "run.json").read_text())
    info.update(status="failed", error="interrupted")
    (target / "run.json").write_text(json.dumps(info))
    (target / "model.keras").unlink()
    (target / "checkpoints" / "last").mkdir(parents=True)
    (target / "checkpoints" / "progress.json").write_text('{"epochs_done": 1, "history": {}, "seconds": [1.0]}')
    (target / "checkpoints" / "last" / "checkpoint").write_text(
        'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n')
    if damage == "truncated":
        (target / "checkpoints" / "last" / "ckpt-1.index").write_bytes(b"\x00\x01garbage")
        (target / "checkpoints" / "last" / "ckpt-1.data-00000-of-00001").write_bytes(b"\x00" * 10)
    return target


def _edit_json(name: str, value) -> "callable":
    def edit(path: Path) -> None:
        (path / name).write_text(json.dumps(value))
    return edit


def _no_lock(edit) -> "callable":
    def without(path: Path) -> None:
        edit(path)
        (path / ".lock").unlink(missing_ok=True)
    return without


def _edit_info(**fields) -> "callable":
    def edit(path: Path) -> None:
        info = json.loads((path / "run.json").read_text())
        info.update(fields)
        (path / "run.json").write_text(json.dumps(info))
    return edit


D = "d"  # the folder of the data files the cases write
HEADERED_EMPTY_LABEL = b"label,text\nWorld,war news\n,sports news\nSports,match\n"
JSONL_EMPTY_LABEL = b'{"text": "war news", "label": "World"}\n{"text": "match", "label": ""}\n'
AG_HALF = b'"2.5","a title","a text"\n"1.0","b","c"\n'
TWO_CLASSES = "label,text\n" + "\n".join(
    f"{'World' if i % 2 else 'Sports'},text number {i} words here" for i in range(40)
)

CASES.update(
    {
        # ---- data files
        "empty label (csv)": (_train_on("e.csv", HEADERED_EMPTY_LABEL), ["line 3", "empty label"]),
        "empty label (jsonl)": (_train_on("e.jsonl", JSONL_EMPTY_LABEL), ["line 2", "empty label"]),
        "fractional AG label": (_train_on("f.csv", AG_HALF), ["line 1", "'2.5' is not an integer class index"]),
        "corrupt deflate stream": (_train_on("c.csv.gz", _gz(b'"1","a","b"\n', "deflate")), ["not a valid gzip file"]),
        "truncated gzip": (_train_on("c.csv.gz", _gz(b'"1","a","b"\n', "truncated")), ["not a valid gzip file"]),
        "invalid JSON line": (
            _train_on("j.jsonl", b'{"text": "a", "label": "x"}\n{oops\n'),
            ["line 2", "invalid JSON"],
        ),
        "JSON line not an object": (_train_on("j.jsonl", b'["a", "b"]\n'), ["line 1", "expected a JSON object"]),
        "JSON line without the label": (_train_on("j.jsonl", b'{"text": "a"}\n'), ["line 1", "no field 'label'"]),
        "JSON text not a string": (
            _train_on("j.jsonl", b'{"text": 5, "label": "x"}\n'),
            ["line 1", "text fields must be strings"],
        ),
        "JSON label an object": (_train_on("j.jsonl", b'{"text": "a", "label": {}}\n'), ["line 1", "label must be"]),
        "no label column": (_train_on("h.csv", b"category,text\nx,y\n"), ["no 'label' column", "--label-field"]),
        "unknown text field": (_train_on("h.csv", b"label,text\nx,y\n", "--text-field", "body"), ["no column 'body'"]),
        "data path is a folder": (
            lambda t, b: ["train", "--data", f"csv:{t}", "--runs-root", t / "runs"],
            ["is a directory"],
        ),
        "one class only": (_train_on("o.csv", b"label,text\nx,a\nx,b\n"), ["at least 2 classes"]),
        "empty text": (_train_on("t.csv", b"label,text\nx,a\ny, \n"), ["line 3", "empty text"]),
        "unterminated quote": (_train_on("n.csv", b'label,text\nx,"abc\ny,d\n'), ["line", "malformed CSV"]),
        "unknown data kind": (lambda t, b: ["train", "--data", "xml:file.xml", "--runs-root", t / "runs"], ["xml"]),
        "eval label unseen in training": (
            lambda t, b: [
                "train",
                "--data",
                _data(t, "a.csv", TWO_CLASSES),
                "--eval-data",
                f"csv:{_write(t / 'e' / 'b.csv', b'label,text' + bytes(chr(10), 'ascii') + b'Business,stocks up')}",
                "--runs-root",
                t / "runs",
            ],
            ["line 2", "'Business' is not one of the classes"],
        ),
        "label index past classes.txt": (
            lambda t, b: ["train", "--data", "csv:" + str(_csv(t, "r.csv", LABEL_7)), "--runs-root", t / "runs"],
            ["1..4 in", "classes.txt"],
        ),
        # ---- config
        "zero epochs": (lambda t, b: ["train", "--data", "sample", "--epochs", "0"], ["epochs", "0", ">= 1"]),
        "negative learning rate": (
            lambda t, b: ["train", "--data", "sample", "--learning-rate", "-1"],
            ["learning_rate"],
        ),
        "unknown optimizer": (lambda t, b: ["train", "--data", "sample", "--optimizer", "sgd"], ["optimizer", "adamw"]),
        "weight decay with adam": (
            lambda t, b: ["train", "--data", "sample", "--model", "transformer", "--weight-decay", "0.1"],
            ["weight decay is AdamW's"],
        ),
        "unknown model": (lambda t, b: ["train", "--data", "sample", "--model", "nosuch"], ["nosuch", "transformer"]),
        "model larger than memory": (
            lambda t, b: ["train", "--data", "sample", "--model", "transformer", "--embed-dim", "1000000000"],
            ["does not fit in memory", "GB"],
        ),
        "one fold": (lambda t, b: ["train", "--data", "sample", "--folds", "1"], ["folds", "[2, 1000]"]),
        "folds with eval data": (
            lambda t, b: ["train", "--data", "sample", "--eval-data", "sample:eval", "--folds", "3"],
            ["no eval data with folds"],
        ),
        "zero seeds": (lambda t, b: ["train", "--data", "sample", "--seeds", "0"], ["seeds", ">= 1"]),
        "seeds with --run-dir": (
            lambda t, b: [
                "train",
                "--data",
                "sample",
                "--model",
                "transformer",
                "--seeds",
                "2",
                "--run-dir",
                t / "one",
            ],
            ["--run-dir names one run"],
        ),
        "--set of a bad type": (
            lambda t, b: ["train", "--data", "sample", "--set", "training.seed=abc"],
            ["training.seed", "abc"],
        ),
        "unknown precision": (lambda t, b: ["train", "--data", "sample", "--precision", "float8"], ["precision"]),
        "bert preset on a transformer": (
            lambda t, b: ["train-bert-frozen", "--model", "transformer", "--data", "sample"],
            ["needs a BERT model"],
        ),
        "preset with an experiment": (
            lambda t, b: [
                "train-transformer",
                "--experiment",
                "a",
                "--experiments-file",
                b[0] / "exp.yaml",
                "--data",
                "sample",
            ],
            ["cannot run experiment 'a'"],
        ),
        "unknown top-level yaml key": (
            lambda t, b: [
                "experiments",
                "list",
                "--experiments-file",
                _write(t / "x.yaml", "runs: {}\nexperiments:\n  a: {}\n"),
            ],
            ["runs: unknown key"],
        ),
        "model sizes in yaml defaults": (
            lambda t, b: [
                "experiments",
                "list",
                "--experiments-file",
                _write(
                    t / "x.yaml", "defaults: {model_params: {embed_dim: 8}}\nexperiments:\n  a: {model: transformer}\n"
                ),
            ],
            ["defaults.model_params"],
        ),
        "TF_CONFIG a list": (
            lambda t, b: ["train", "--data", "sample", "--runs-root", t / "runs"],
            ["TF_CONFIG", "got an array"],
            None,
            {"TF_CONFIG": "[]"},
        ),
        "TF_CONFIG cluster a string": (
            lambda t, b: ["train", "--data", "sample", "--runs-root", t / "runs"],
            ["TF_CONFIG: cluster"],
            None,
            {"TF_CONFIG": '{"cluster": "x"}'},
        ),
        "TF_CONFIG not JSON": (
            lambda t, b: ["train", "--data", "sample", "--runs-root", t / "runs"],
            ["TF_CONFIG is not valid JSON"],
            None,
            {"TF_CONFIG": "{oops"},
        ),
        "TF_CONFIG task outside the cluster": (
            lambda t, b: ["train", "--data", "sample", "--runs-root", t / "runs"],
            ["task index 2"],
            None,
            {"TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 2}}'},
        ),
        # ---- run directories
        "run.json a list": (
            lambda t, b: ["predict", "hello", "--run", _run_copy(t, b, _edit_json("run.json", []))],
            ["run.json", "JSON object"],
        ),
        "config.json a list": (
            lambda t, b: ["evaluate", _run_copy(t, b, _edit_json("config.json", []))],
            ["config.json", "JSON object"],
        ),
        "labels.json too short": (
            lambda t, b: ["predict", "hello", "--run", _run_copy(t, b, _edit_json("labels.json", ["World", "Sports"]))],
            ["4 outputs", "names 2 classes"],
        ),
        "labels.json one name": (
            lambda t, b: ["export", _run_copy(t, b, _edit_json("labels.json", ["World"])), "--out", t / "e"],
            ["4 outputs", "names 1 classes"],
        ),
        "a run still running": (  # its pid alive; written by an earlier textclf (no .lock): the pid is all there is
            lambda t, b: ["predict", "hello", "--run", _run_copy(t, b, _no_lock(_edit_info(status="running")))],
            ["not complete", "running"],
        ),
        "a run said running that no process writes": (  # its pid alive (reused), its .lock held by no one
            lambda t, b: ["predict", "hello", "--run", _run_copy(t, b, _edit_info(status="running"))],
            ["not complete (status: interrupted)", "train --resume"],
        ),
        "resume a complete run": (lambda t, b: ["train", "--resume", _run_copy(t, b)], ["already complete"]),
        "resume a folder that is no run": (lambda t, b: ["train", "--resume", t], ["not a textclf run directory"]),
        "resume a truncated checkpoint": (
            lambda t, b: ["train", "--resume", _resumable_copy(t, b, "truncated")],
            ["checkpoint", "unreadable", "train it again"],
        ),
        "resume a deleted checkpoint": (
            lambda t, b: ["train", "--resume", _resumable_copy(t, b, "deleted")],
            ["checkpoint", "unreadable", "train it again"],
        ),
        "resume a live run": (
            lambda t, b: [
                "train",
                "--resume",
                _run_copy(t, b, _edit_info(status="running", pid=os.getpid(), host=__import__("socket").gethostname())),
            ],
            ["still running"],
        ),
        "compare one run": (lambda t, b: ["runs", "compare", b[2]], ["needs two or more runs or groups (got 1)"]),
        "report with no runs": (
            lambda t, b: ["report", "--runs-root", t / "none", "--out", t / "r.html"],
            ["no complete run"],
        ),
        "export into a full folder": (
            lambda t, b: ["export", b[2], "--out", _write(t / "full" / "x", "x").parent],
            ["exists and is not empty"],
        ),
        "export format unknown": (
            lambda t, b: ["export", b[2], "--format", "onnx", "--out", t / "e"],
            ["--format", "onnx"],
            2,
        ),
        "predict nothing": (lambda t, b: ["predict", "--run", b[2]], ["no text to classify"]),
        "predict an empty text": (lambda t, b: ["predict", "", "--run", b[2]], ["text 1 is empty"]),
        "predict a missing file": (lambda t, b: ["predict", "--file", t / "none.txt", "--run", b[2]], ["not found"]),
        "predict a non-UTF-8 file": (
            lambda t, b: ["predict", "--file", _write(t / "l.txt", b"caf\xe9\n"), "--run", b[2]],
            ["line 1", "not valid UTF-8"],
        ),
        # ---- model store
        "model store is a file": (
            lambda t, b: ["models", "import-hf", t, "--name", "m"],
            ["is not a directory"],
            None,
            lambda t: {"TEXTCLF_HOME": str(_write(t / "home", "x"))},
        ),
        "import a folder without a checkpoint": (
            lambda t, b: ["models", "import-hf", t, "--name", "m"],
            ["config.json"],
            None,
            lambda t: {"TEXTCLF_HOME": str(t / "h")},
        ),
        # ---- the other commands
        "data stats of a missing file": (
            lambda t, b: ["data", "stats", f"csv:{t / 'none.csv'}"],
            ["data file not found"],
        ),
        "data stats plot not a png": (lambda t, b: ["data", "stats", "sample", "--plot", t / "x.jpg"], [".png"]),
        "compare an unknown group": (
            lambda t, b: ["runs", "compare", "no-such-group", b[2], "--runs-root", b[0] / "runs"],
            ["run not found: no-such-group"],
        ),
        "threshold above 1": (lambda t, b: ["predict", "x", "--run", b[2], "--threshold", "2"], ["--threshold"], 2),
        "class weight neither none nor balanced nor a file": (
            lambda t, b: [
                "train",
                "--data",
                "sample",
                "--model",
                "transformer",
                "--class-weight",
                "weird",
                "--runs-root",
                t / "runs",
            ],
            ["class weight file not found: weird", "none, balanced"],
        ),
        "serve a folder that is no run": (lambda t, b: ["serve", t, "--port", "1"], ["not a textclf run directory"]),
        "tune with no trials": (
            lambda t, b: [
                "tune",
                "a",
                "--space",
                "training.epochs=1,2",
                "--trials",
                "0",
                "--experiments-file",
                b[0] / "exp.yaml",
                "--out",
                t / "s",
            ],
            ["--trials", "greater than or equal to 1"],
            2,  # a range of the option: a usage error, as every option's range
        ),
        "fields with the built-in sample data": (
            lambda t, b: ["train", "--data", "sample", "--text-field", "txt", "--runs-root", t / "runs"],
            ["no --text-field", "sample"],
        ),
        "a plot under a file": (
            lambda t, b: ["evaluate", b[2], "--curve", b[2] / "run.json" / "c.png"],
            ["run.json is not a folder"],
        ),
        # ---- tune
        "tune without a space": (
            lambda t, b: ["tune", "a", "--experiments-file", b[0] / "exp.yaml", "--out", t / "s"],
            ["--space"],
        ),
        "tune with a bad space": (
            lambda t, b: [
                "tune",
                "a",
                "--space",
                "training.epochs",
                "--experiments-file",
                b[0] / "exp.yaml",
                "--out",
                t / "s",
            ],
            ["KEY=CHOICES"],
        ),
        "tune an unknown experiment": (
            lambda t, b: [
                "tune",
                "zzz",
                "--space",
                "training.epochs=1,2",
                "--experiments-file",
                b[0] / "exp.yaml",
                "--out",
                t / "s",
            ],
            ["unknown experiment 'zzz'"],
        ),
    }
)


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_table(name, base, tmp_path):
    setup, fragments, *rest = CASES[name]
    code, env = (rest + [None, None])[:2]
    before = _snapshot(base[0])
    args = setup(tmp_path, base)
    result = run(*args, env=env(tmp_path) if callable(env) else env)
    assert_one_line_error(result, *fragments, code=code)
    if code is None:
        assert result.exit_code == 1, result.output  # 1: the input is wrong; 2 is for usage errors
    no_false_complete(tmp_path)
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".") and p.name.endswith(".tmp")]
    new_runs = [p for p in (tmp_path / "runs").glob("*") if not p.is_symlink()] if (tmp_path / "runs").is_dir() else []
    assert all(p.name == base[2].name for p in new_runs), new_runs  # no run directory left by a failed start
    assert _snapshot(base[0]) == before  # the shared run is untouched


def _snapshot(root: Path) -> dict:
    return {str(p): p.stat().st_mtime_ns for p in (root / "runs").rglob("*") if p.is_file()}


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

    def vanish(info, path=None):  # `two` disappears after the folder was scanned
        shutil.rmtree(root / "two", ignore_errors=True)
        return real_status(info, path)

    monkeypatch.setattr(runs_module, "status", vanish)
    result = run("runs", "list", "--runs-root", root, "--json")
    assert result.exit_code == 0 and "Traceback" not in result.output
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert "two" not in names or not (root / "two").exists()
    monkeypatch.setattr(runs_module, "status", real_status)
    # comparing a run that is gone: one line
    assert_one_line_error(run("runs", "compare", root / "one", root / "two"), "run not found")


def test_a_full_disk_under_any_requested_output_is_one_line(base, tmp_path, monkeypatch):
    """Plots, curves, histograms and report pages share one write path: ENOSPC while writing any of
    them is one line, and no partial file is left."""
    root, train, latest = base
    real_fsync = os.fsync

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(runs_module.os, "fsync", full)
    for args in (
        ["evaluate", latest, "--curve", tmp_path / "c.png"],
        ["evaluate", latest, "--plot", tmp_path / "p.png"],
        ["data", "stats", f"csv:{train}", "--plot", tmp_path / "h.png"],
        ["report", latest, "--out", tmp_path / "r.html"],
    ):
        assert_one_line_error(run(*args), f"cannot write {args[-1]}", "No space left on device", code=1)
    monkeypatch.setattr(runs_module.os, "fsync", real_fsync)
    assert list(tmp_path.iterdir()) == []


def test_damaged_predictions_of_a_run_are_one_line(base, copy_of_run):
    _, _, latest = base
    data = (copy_of_run / "predictions.npz").read_bytes()
    for damaged in (data[: len(data) // 2], b"not a zip", b""):
        (copy_of_run / "predictions.npz").write_bytes(damaged)
        for command in ("compare", "report"):
            args = ["runs", "compare", latest, copy_of_run] if command == "compare" else \
                ["report", latest, copy_of_run, "--out", copy_of_run.parent / "r.html"]
            assert_one_line_error(run(*args), "predictions.npz is unreadable", "damaged or truncated", code=1)
    assert not (copy_of_run.parent / "r.html").exists()


def test_a_damaged_search_journal_is_one_line_and_a_half_written_line_is_dropped(base, tmp_path):
    from textclf.tuning import STUDY_FILE, _check_journal

    journal = tmp_path / STUDY_FILE
    journal.write_bytes(b'{"op_code": 0, "worker_id": "a"}\n{"op_code": 4, "wor')  # a search killed mid-write
    _check_journal(journal)
    assert journal.read_bytes() == b'{"op_code": 0, "worker_id": "a"}\n'
    out = tmp_path / "search"
    out.mkdir()
    (out / STUDY_FILE).write_bytes(b'{"op_code": 0, "worker_id": "a"}\ngarbage{\n{"op_code": 1}\n')
    result = run("tune", "a", "--space", "training.epochs=1,2", "--trials", "1", "--experiments-file",
                 base[0] / "exp.yaml", "--out", out)
    assert_one_line_error(result, f"{out / STUDY_FILE} is damaged at line 2", "another --out", code=1)


@pytest.mark.parametrize("name,content", [("config.json", "[1, 2]"), ("config.json", "null"),
                                          ("tokenizer_config.json", '["a"]')])
def test_checkpoint_json_that_is_not_an_object_is_one_line(tmp_path, monkeypatch, name, content):
    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path / "home"))
    src = tmp_path / "hf"
    src.mkdir()
    (src / "config.json").write_text('{"model_type": "bert", "vocab_size": 8, "hidden_size": 4, '
                                     '"num_hidden_layers": 1, "num_attention_heads": 1, "intermediate_size": 4}')
    (src / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\na\n")
    (src / "model.safetensors").write_bytes(b"")
    (src / name).write_text(content)
    result = run("models", "import-hf", src, "--name", "x")
    assert_one_line_error(result, f"{src / name} must hold a JSON object", code=1)
    assert not (tmp_path / "home" / "models" / "x").exists()


def test_a_damaged_imported_model_is_named_not_a_raw_exception(tmp_path, monkeypatch):
    from textclf.models import store

    monkeypatch.setenv("TEXTCLF_HOME", str(tmp_path / "home"))
    folder = store.models_dir() / "mini"
    folder.mkdir(parents=True)
    (folder / store.META).write_text("[]")
    assert_one_line_error(run("train", "--data", "sample", "--model", "mini", "--runs-root", tmp_path / "runs"),
                          "imported model 'mini' is damaged", "--overwrite", code=1)
    assert store.list_models() == [] and not (tmp_path / "runs").exists()


def test_two_searches_in_one_folder_do_not_share_its_journal(base, tmp_path):
    """A second `tune` into the folder a running search holds stops with one line before it reads or
    repairs the journal."""
    import fcntl

    out = tmp_path / "search"
    out.mkdir()
    args = ["tune", "a", "--space", "training.epochs=1,2", "--trials", "1", "--experiments-file", base[0] / "exp.yaml",
            "--out", out]
    with open(out / runs_module.LOCK_FILE, "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert_one_line_error(run(*args), f"another textclf tune is searching in {out}", code=1)
    assert not (out / "study.log").exists()


DEEP_JSON = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"


@pytest.mark.parametrize("name", ["run.json", "config.json", "labels.json", "metrics.json"])
def test_a_run_file_nested_too_deeply_is_one_line(base, tmp_path, name):
    """JSON nested 100,000 deep in any run file: one line naming the file (it was "unexpected RecursionError"),
    and `runs list` still lists the other runs (it failed whole)."""
    _, _, latest = base
    bad, good = tmp_path / "runs" / "bad", tmp_path / "runs" / "good"
    shutil.copytree(latest, bad)
    shutil.copytree(latest, good)
    (bad / name).write_text(DEEP_JSON)
    command = ["evaluate", bad] if name in ("metrics.json", "config.json") else ["predict", "x", "--run", bad]
    assert_one_line_error(run(*command), f"{name} is unreadable (JSON nested too deeply)")
    listed = run("runs", "list", "--runs-root", tmp_path / "runs", "--json")
    assert listed.exit_code == 0, listed.output
    assert {"good"} <= {json.loads(x)["name"] for x in listed.stdout.splitlines()}


def test_other_json_files_nested_too_deeply_are_one_line(tmp_path):
    weights = tmp_path / "w.json"
    weights.write_text(DEEP_JSON)
    assert_one_line_error(run("train", "--data", "sample", "--class-weight", weights, "--runs-root", tmp_path),
                          "not valid JSON (JSON nested too deeply)")
    store = tmp_path / "home" / "models" / "deep"
    store.mkdir(parents=True)
    (store / "textclf-model.json").write_text(DEEP_JSON)
    result = run("models", "list", "--json", env={"TEXTCLF_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0 and "RecursionError" not in result.output  # the damaged entry is passed over
    assert "transformer" in {json.loads(x)["name"] for x in result.stdout.splitlines()}


def test_a_shortened_labels_file_is_the_run_s_fault_not_the_data_s(copy_of_run):
    """labels.json cut to two classes: evaluate says the run is damaged (it blamed the eval file's labels)."""
    (copy_of_run / "labels.json").write_text(json.dumps(["World", "Sports"]))
    assert_one_line_error(run("evaluate", copy_of_run), "labels.json names 2 classes (World, Sports), not the 4",
                          "the run is damaged")
