"""Crash safety and determinism: SIGKILL mid-run then resume equals an uninterrupted run."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ag_rows, write_csv, cli as run
from textclf.runs import is_complete

EPOCHS = 12


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """AG-layout files big enough that an epoch takes a noticeable moment, an experiments file."""
    root = tmp_path_factory.mktemp("resume")
    train = write_csv(root / "ag" / "train.csv", ag_rows(250, seed=1))
    evaluation = write_csv(root / "ag" / "eval.csv", ag_rows(20, seed=2))
    (root / "experiments.yaml").write_text(f"""
defaults:
  data: {{train: "csv:{train}", eval: "csv:{evaluation}"}}
experiments:
  tiny:
    model: transformer
    model_params: {{embed_dim: 8, num_heads: 1, ff_dim: 8, max_length: 16, vocab_size: 200, dropout: 0.2}}
    training: {{epochs: {EPOCHS}, global_batch_size: 16, seed: 5}}
  derived:  # max_length taken from the data: the saved config differs from the requested one
    model: transformer
    model_params: {{embed_dim: 8, num_heads: 1, ff_dim: 8, vocab_size: 200}}
    training: {{epochs: {EPOCHS}, global_batch_size: 16, seed: 5}}
""")
    return root


@pytest.fixture(scope="module")
def reference(setup):
    """The uninterrupted run."""
    result = run("train", "--experiment", "tiny", "--experiments-file", setup / "experiments.yaml",
                 "--run-dir", setup / "reference")
    assert result.exit_code == 0, result.output
    return setup / "reference"


def start_and_kill(args: list, cwd: Path, progress, after_epochs: int = 3) -> None:
    """Start the CLI in a process, SIGKILL it once `after_epochs` epochs are checkpointed."""
    proc = subprocess.Popen([sys.executable, "-m", "textclf", *map(str, args)], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            try:
                done = json.loads(progress.read_text())["epochs_done"]
            except (OSError, ValueError, KeyError):
                done = 0
            if done >= after_epochs:
                break
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.02)
        else:
            pytest.fail("training never reached the epoch to kill at")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL


def assert_same_run(resumed: Path, reference: Path) -> None:
    assert is_complete(resumed)
    a = json.loads((resumed / "history.json").read_text())
    b = json.loads((reference / "history.json").read_text())
    assert len(a["loss"]) == EPOCHS
    for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key
    ma = json.loads((resumed / "metrics.json").read_text())
    mb = json.loads((reference / "metrics.json").read_text())
    assert ma["accuracy"] == mb["accuracy"] and ma["confusion_matrix"] == mb["confusion_matrix"]
    assert not (resumed / "checkpoints").exists()  # removed once complete


def test_sigkill_then_train_resume_matches_an_uninterrupted_run(setup, reference):
    run_dir = setup / "killed"
    start_and_kill(["train", "--experiment", "tiny", "--experiments-file", setup / "experiments.yaml",
                    "--run-dir", run_dir], setup, run_dir / "checkpoints" / "progress.json")
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "running" and not is_complete(run_dir)  # never looks complete
    # its pid now another live process's (a restarted container numbers processes from 1 again): no one holds
    # the run's lock, so it is still taken for interrupted, and the resume below (under the lock) goes on
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        (run_dir / "run.json").write_text(json.dumps({**info, "pid": other.pid}))
        listed = run("runs", "list", "--runs-root", setup, "--json")
        statuses = {json.loads(line)["name"]: json.loads(line)["status"] for line in listed.stdout.splitlines()}
        assert statuses["killed"] == "interrupted"
        # evaluate/predict refuse the unfinished run
        assert run("evaluate", run_dir).exit_code != 0
        # saved by an earlier textclf, without fields added since: it resumes with their defaults
        saved = json.loads((run_dir / "config.json").read_text())
        del saved["training"]["calibration"], saved["distill"]
        (run_dir / "config.json").write_text(json.dumps(saved))

        result = run("train", "--resume", run_dir)
    finally:
        other.kill()
        other.wait()
    assert result.exit_code == 0, result.output
    assert "resuming after epoch" in result.stderr
    assert json.loads((run_dir / "run.json").read_text())["resumed"] == 1
    assert_same_run(run_dir, reference)


def test_a_run_whose_lock_is_held_is_running_whatever_its_pid(tmp_path):
    """A run said to be running, its pid alive: running while a process holds its lock (a resume is refused);
    interrupted when no one does; running still when it has no lock file (written by an earlier textclf: its
    pid is all there is to go by)."""
    import socket

    from textclf.runs import status

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    info = {"status": "running", "pid": os.getppid(), "host": socket.gethostname()}  # a live process, not us
    (run_dir / "run.json").write_text(json.dumps(info))
    (run_dir / "config.json").write_text("{}")
    assert status(info, run_dir) == "running" == status(info)  # no lock file: the pid alone
    holder = subprocess.Popen([sys.executable, "-c", "import fcntl, sys, time; f = open(sys.argv[1], 'a'); "
                               "fcntl.flock(f, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(600)",
                               str(run_dir / ".lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert status(info, run_dir) == "running"
        assert "is still running" in run("train", "--resume", run_dir).stderr
    finally:
        holder.kill()
        holder.wait()
    assert status(info, run_dir) == "interrupted"
    assert status(info) == "running"  # without the directory, the pid alone


def test_a_resume_without_its_checkpoint_says_it_starts_again(setup, reference):
    """The checkpoints of a killed run removed: the resume says none of the epochs done has one, and trains from
    epoch 1 to the uninterrupted run's numbers."""
    run_dir = setup / "no-checkpoint"
    start_and_kill(["train", "--experiment", "tiny", "--experiments-file", setup / "experiments.yaml",
                    "--run-dir", run_dir], setup, run_dir / "checkpoints" / "progress.json", after_epochs=2)
    done = json.loads((run_dir / "checkpoints" / "progress.json").read_text())["epochs_done"]
    shutil.rmtree(run_dir / "checkpoints" / "last")
    result = run("train", "--resume", run_dir)
    assert result.exit_code == 0, result.output
    assert f"no checkpoint of the {done} epochs done in" in result.stderr and "starts again from epoch 1" in \
        result.stderr and "resuming after epoch" not in result.stderr
    assert_same_run(run_dir, reference)


def test_rerunning_an_interrupted_experiment_continues_it(setup, reference):
    runs_root = setup / "exp-runs"
    start_and_kill(["experiments", "run", "tiny", "--experiments-file", "experiments.yaml", "--runs-root", runs_root],
                   setup, _progress_in(runs_root))
    [killed] = [p for p in runs_root.iterdir() if p.is_dir() and not p.is_symlink()]
    result = run("experiments", "run", "tiny", "--experiments-file", setup / "experiments.yaml",
                 "--runs-root", runs_root, "--json")
    assert result.exit_code == 0, result.output
    assert f"resuming the interrupted run {killed}" in result.stderr
    [row] = json.loads(result.stdout.splitlines()[-1])["experiments"]
    assert row["status"] == "complete" and Path(row["run"]) == killed
    assert_same_run(killed, reference)


def test_an_experiment_with_values_derived_from_the_data_resumes_too(setup):
    """The saved config holds the max_length derived from the data, which the experiment does not give:
    running the experiment again still finds its interrupted run (by the config as requested)."""
    runs_root = setup / "derived-runs"
    start_and_kill(["experiments", "run", "derived", "--experiments-file", "experiments.yaml", "--runs-root",
                    runs_root], setup, _progress_in(runs_root), after_epochs=1)
    [killed] = [p for p in runs_root.iterdir() if p.is_dir() and not p.is_symlink()]
    saved = json.loads((killed / "config.json").read_text())["model_params"]["max_length"]
    assert (
        saved
        and json.loads((killed / "run.json").read_text())["requested_config"]["model_params"]["max_length"] != saved
    )
    result = run("experiments", "run", "derived", "--experiments-file", setup / "experiments.yaml",
                 "--runs-root", runs_root)
    assert result.exit_code == 0, result.output
    assert f"resuming the interrupted run {killed}" in result.stderr
    assert is_complete(killed) and len([p for p in runs_root.iterdir() if p.is_dir() and not p.is_symlink()]) == 1


class _progress_in:
    """progress.json of the one run that will appear under a runs folder."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def read_text(self) -> str:
        found = list(self.root.glob("*/checkpoints/progress.json"))
        if not found:
            raise OSError("not yet")
        return found[0].read_text()


def test_resume_refuses_complete_runs_and_extra_options(reference):
    result = run("train", "--resume", reference)
    assert result.exit_code == 1 and "already complete" in result.stderr
    result = run("train", "--resume", reference, "--epochs", "3")  # extending: only an interrupted run
    assert result.exit_code == 1 and "is complete, and a complete run keeps no checkpoint" in result.stderr
    result = run("train", "--resume", reference, "--learning-rate", "0.1")
    assert result.exit_code == 1 and "drop the other config options (training.learning_rate" in result.stderr


def test_same_seed_same_metrics_with_op_determinism(setup, tmp_path):
    args = ["train", "--experiment", "tiny", "--experiments-file", setup / "experiments.yaml", "--epochs", "2",
            "--deterministic"]
    first = run(*args, "--run-dir", tmp_path / "a")
    second = run(*args, "--run-dir", tmp_path / "b")
    assert first.exit_code == 0 and second.exit_code == 0, first.output + second.output
    a, b = (json.loads((tmp_path / d / "history.json").read_text()) for d in "ab")
    assert a == b
    assert json.loads((tmp_path / "a" / "config.json").read_text())["runtime"]["deterministic"] is True


def test_early_stopping_and_best_epoch_restore(setup, tmp_path):
    # A learning rate this high stops improving quickly; patience 1 must stop early.
    result = run("train", "--experiment", "tiny", "--experiments-file", setup / "experiments.yaml",
                 "--epochs", "30", "--patience", "1", "--restore-best", "--set", "training.monitor=val_accuracy",
                 "--learning-rate", "0.05", "--run-dir", tmp_path / "r")
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    history = json.loads((tmp_path / "r" / "history.json").read_text())
    assert metrics["stopped_early"] and metrics["epochs_run"] == len(history["loss"]) < 30
    best = max(range(len(history["val_accuracy"])), key=lambda i: (history["val_accuracy"][i], -i)) + 1
    assert metrics["best_epoch"] == best
    assert metrics["epochs_run"] == best + 1  # patience 1: one epoch without improvement
    # the restored weights are the best epoch's: final accuracy equals its val_accuracy
    assert metrics["accuracy"] == pytest.approx(history["val_accuracy"][best - 1], abs=1e-6)


@pytest.mark.parametrize("monitor,values,min_delta,best,wait", [
    ("val_loss", [0.50, 0.40, 0.398, 0.396, 0.395], 0.0, 5, 0),
    ("val_loss", [0.50, 0.40, 0.398, 0.396, 0.395], 0.005, 2, 3),  # creeping by < min_delta is no gain
    ("val_loss", [0.50, 0.40, 0.398, 0.39, 0.395], 0.005, 4, 1),   # 0.39 beats 0.40 by more
    ("val_accuracy", [0.80, 0.85, 0.852, 0.86], 0.005, 4, 0),
    ("val_accuracy", [0.80, 0.85, 0.852, 0.853], 0.005, 2, 2),
])
def test_min_delta_decides_improvement(monitor, values, min_delta, best, wait):
    from textclf.config import TrainingConfig
    from textclf.training import EarlyStopping

    stopping = EarlyStopping(TrainingConfig(monitor=monitor, min_delta=min_delta, patience=2))
    assert stopping.replay({monitor: values}) == wait
    assert stopping.best_epoch == best
    assert stopping.should_stop({monitor: values}) == (wait >= 2)


def test_resume_refuses_a_checkpoint_of_another_optimizer(tmp_path):
    import numpy as np

    from textclf._tf import keras
    from textclf.errors import TextclfError
    from textclf.compat import create_optimizer_slots as _create_optimizer_slots
    from textclf.training import EpochCheckpoint, TrainTimer

    def model(optimizer):
        m = keras.Sequential([keras.Input(shape=(3,)), keras.layers.Dense(2)])
        m.compile(optimizer=optimizer, loss="mse")
        return m

    x, y = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    old = model(keras.optimizers.Adam())  # tf_keras' newer Adam: other variable names than OptimizerV2's
    old.fit(x, y, epochs=1, verbose=0)
    EpochCheckpoint(tmp_path, old, TrainTimer()).manager.save(checkpoint_number=1)

    same = model(keras.optimizers.legacy.Adam())
    same.fit(x, y, epochs=1, verbose=0)
    saved = EpochCheckpoint(tmp_path / "v2", same, TrainTimer())
    saved.epoch.assign(1)
    saved.manager.save(checkpoint_number=1)
    (tmp_path / "v2" / "progress.json").write_text('{"epochs_done": 1, "history": {"loss": [0.5]}, "seconds": [1.0]}')
    again = model(keras.optimizers.legacy.Adam())
    _create_optimizer_slots(again)
    assert EpochCheckpoint(tmp_path / "v2", again, TrainTimer()).restore() == 1
    assert int(again.optimizer.iterations.numpy()) == int(same.optimizer.iterations.numpy()) == 1

    new = model(keras.optimizers.legacy.Adam())
    _create_optimizer_slots(new)
    with pytest.raises(TextclfError, match="does not match this model and optimizer"):
        EpochCheckpoint(tmp_path, new, TrainTimer()).restore()


def test_a_lock_file_that_is_a_folder_is_named(reference, tmp_path):
    """A run whose .lock is a folder: the error names the lock file, not the run folder."""
    run_dir = tmp_path / "r"
    shutil.copytree(reference, run_dir)
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "status": "interrupted"}))
    (run_dir / ".lock").unlink()
    (run_dir / ".lock").mkdir()
    result = run("train", "--resume", run_dir)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"cannot use the run's lock file {run_dir / '.lock'}: it is a folder" in result.stderr


def test_taking_a_run_s_lock_waits_out_a_status_probe(tmp_path):
    """A status probe (runs list) holds a run's lock shared for an instant; a trainer taking it exclusively
    then waits a moment instead of saying the run is being trained. A lock held on is still "busy"."""
    import fcntl
    import threading

    from textclf.errors import RunError
    from textclf.runs import lock_dir, release

    (tmp_path / ".lock").write_text("")
    probe = open(tmp_path / ".lock", "rb")
    fcntl.flock(probe, fcntl.LOCK_SH | fcntl.LOCK_NB)
    threading.Timer(0.1, probe.close).start()  # the probe's file closes: its shared lock goes
    held = lock_dir(tmp_path, "busy")
    assert held is not None
    with pytest.raises(RunError, match="busy"):  # a second trainer: the first holds it throughout
        lock_dir(tmp_path, "busy")
    release(held)


def test_a_lock_that_is_a_fifo_is_not_opened(tmp_path):
    """A FIFO where the run's .lock belongs: status and lock_dir answer at once (opening it waited for ever)."""
    import socket
    import threading

    from textclf.errors import RunError
    from textclf.runs import lock_dir, status

    os.mkfifo(tmp_path / ".lock")
    info = {"status": "running", "pid": os.getppid(), "host": socket.gethostname()}
    answers = []

    def ask():
        answers.append(status(info, tmp_path))
        try:
            lock_dir(tmp_path, "busy")
        except RunError as err:
            answers.append(str(err))

    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    asker.join(timeout=30)
    assert answers[:1] == ["running"]  # the pid rule alone, as for a run without a lock file
    assert answers[1].startswith(f"cannot use the run's lock file {tmp_path / '.lock'}: it is not a plain file")
