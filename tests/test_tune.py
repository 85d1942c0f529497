"""`textclf tune`: optuna search scored on a fold of the training data, resumable after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ag_split, assert_one_line_error, cli

TEXTCLF = Path(sys.executable).with_name("textclf")


def _yaml(root: Path, train: Path, evaluation: Path, epochs: int = 4) -> Path:
    path = root / "x.yaml"
    path.write_text(f"""# my experiments
experiments:
  mlp:
    model: ngram-mlp
    data: {{train: "csv:{train}", eval: "csv:{evaluation}"}}
    training: {{epochs: {epochs}}}

groups:
  all: [mlp]
""")
    return path


def test_parse_space():
    from textclf.errors import ConfigError
    from textclf.tuning import parse_space

    lr, drop, layers = parse_space(["training.learning_rate=log:1e-4..1e-2", "model_params.dropout=0.1,0.3",
                                    "model_params.num_layers=1..3"])
    assert (lr.low, lr.high, lr.log, lr.integer) == (1e-4, 1e-2, True, False)
    assert drop.choices == (0.1, 0.3)
    assert (layers.low, layers.high, layers.integer) == (1, 3, True)
    assert parse_space(["training.learning_rate=3e-3,1e-2"])[0].choices == (0.003, 0.01)  # not YAML 1.1's strings
    for bad, message in (("training.epochs", "KEY=CHOICES"), ("a=3..1", "LOW < HIGH"), ("a=log:0..1", "LOW > 0")):
        with pytest.raises(ConfigError, match=message):
            parse_space([bad])
    with pytest.raises(ConfigError, match="twice"):
        parse_space(["a=1,2", "a=3,4"])


def test_tune_never_reads_the_eval_data_and_writes_the_best_experiment(tmp_path, monkeypatch):
    import textclf.data.sources as sources

    train, evaluation = ag_split(tmp_path, 15, 5)
    path = _yaml(tmp_path, train, evaluation)
    read: list[str] = []
    real = sources.load_examples
    monkeypatch.setattr(sources, "load_examples", lambda spec, *a, **k: (read.append(spec), real(spec, *a, **k))[1])
    result = cli(
        "tune",
        "mlp",
        "--space",
        "training.learning_rate=1e-3,3e-3",
        "--space",
        "model_params.dropout=0.1,0.2",
        "--trials",
        3,
        "--experiments-file",
        path,
        "--out",
        tmp_path / "search",
        "--json",
    )
    assert result.exit_code == 0, result.output
    assert read and all("eval.csv" not in spec for spec in read), read
    data = json.loads(result.stdout.strip().splitlines()[-1])
    assert [t["number"] for t in data["trials"]] == [0, 1, 2]
    done = [t for t in data["trials"] if t["state"] == "complete"]
    assert data["best"]["value"] == max(t["value"] for t in done)
    metrics = json.loads((Path(data["best"]["run_dir"]) / "metrics.json").read_text())
    assert metrics["accuracy"] == data["best"]["value"] and "fold 1 of 5" in metrics["data"]
    text = path.read_text()
    assert text.startswith("# my experiments") and "groups:\n  all: [mlp]" in text  # the rest kept as written
    from textclf.experiments import load_experiments

    tuned = load_experiments(path).get("mlp-tuned")
    assert tuned.config.training.learning_rate == data["best"]["params"]["training.learning_rate"]
    assert tuned.config.model_params.dropout == data["best"]["params"]["model_params.dropout"]
    assert tuned.config.data.eval == f"csv:{evaluation}"  # the experiment keeps its own eval data
    again = cli("tune", "mlp", "--space", "training.learning_rate=1e-3", "--trials", 3, "--experiments-file", path,
                "--out", tmp_path / "search")
    assert_one_line_error(again, "holds a search with other settings", "space")


def test_tune_refuses_an_unknown_field_before_any_trial(tmp_path):
    train, evaluation = ag_split(tmp_path, 5, 2)
    result = cli("tune", "mlp", "--space", "training.learning_rat=1,2", "--experiments-file",
                 _yaml(tmp_path, train, evaluation), "--out", tmp_path / "s")
    assert_one_line_error(result, "training.learning_rat", "unknown key")
    assert not (tmp_path / "s" / "trials").exists()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_a_killed_search_continues_where_it_stopped(tmp_path, sig):
    train, evaluation = ag_split(tmp_path, 15, 5)
    path = _yaml(tmp_path, train, evaluation, epochs=40)  # ≈ 0.1 s an epoch (checkpoints): seconds to kill in
    out = tmp_path / "search"
    cmd = [str(TEXTCLF), "tune", "mlp", "--space", "training.learning_rate=1e-3,2e-3", "--trials", 3,
           "--set", "training.patience=0", "--experiments-file", str(path), "--out", str(out), "--json"]
    cmd = [str(c) for c in cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    progress = out / "trials" / "trial-1" / "checkpoints" / "progress.json"
    deadline = time.time() + 240
    while not progress.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the search ended before it could be killed"
    os.kill(proc.pid, sig)
    code = proc.wait()
    if sig == signal.SIGINT:  # Ctrl-C stops the search (not just the trial), in one line
        assert code == 130
        errors = [line for line in proc.stderr.read().splitlines() if line.startswith("error:")]
        assert errors == ["error: interrupted; run the same textclf tune command again to continue the search"]
    first = json.loads((out / "trials" / "trial-0" / "run.json").read_text())
    assert first["status"] == "complete"
    killed = json.loads((out / "trials" / "trial-1" / "run.json").read_text())
    assert (killed["status"], killed.get("error")) == (("running", None) if sig == signal.SIGKILL
                                                       else ("interrupted", "interrupted"))

    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout.strip().splitlines()[-1])
    assert [t["number"] for t in data["trials"]] == [0, 1, 2]
    assert all(t["state"] in ("complete", "pruned") for t in data["trials"])
    assert json.loads((out / "trials" / "trial-0" / "run.json").read_text()) == first  # kept, not trained again
    resumed = json.loads((out / "trials" / "trial-1" / "run.json").read_text())
    assert resumed["status"] == "complete" and resumed["resumed"] == 1
