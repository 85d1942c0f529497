"""A run's lifecycle (runs.start / Run.finish), the listener contract, presets and resume rules."""

from __future__ import annotations

import json
import os
import stat

import pytest

from conftest import TINY, ag_split, assert_one_line_error, cli


def test_start_marks_running_writes_config_and_labels_and_marks_failed_on_error(tmp_path):
    from textclf import runs

    with pytest.raises(ValueError):
        with runs.start(tmp_path, "m", {"model": "m"}, ["a", "b"], model="m") as run:
            assert run.info["status"] == "running"
            assert run.config == {"model": "m"} and run.labels == ["a", "b"]
            raise ValueError("boom\nsecond line")
    info = runs.Run.open(run.path).info
    assert info["status"] == "failed" and info["error"] == "boom" and info["duration_seconds"] >= 0
    assert not (tmp_path / runs.LATEST).exists()


def test_finish_saves_marks_complete_moves_latest_and_drops_checkpoints(tmp_path):
    from textclf import runs

    class Model:
        def save(self, path):
            open(path, "wb").write(b"weights")

    with runs.start(tmp_path, "m", {}, ["a"]) as run:
        run.checkpoints_dir.mkdir()
        (run.checkpoints_dir / "ckpt").write_text("x")
        run.finish(Model(), {"accuracy": 0.5}, {"loss": [1.0]}, {"model": "m"})
    opened = runs.Run.open(tmp_path / runs.LATEST)
    assert opened.info["status"] == "complete" and opened.info["model"] == "m"
    assert opened.metrics == {"accuracy": 0.5} and opened.history == {"loss": [1.0]}
    assert opened.model_path.read_bytes() == b"weights"
    assert not run.checkpoints_dir.exists()
    assert [p.name for p in run.path.iterdir() if p.name.startswith(".")] == [runs.LOCK_FILE]  # no temp files left


def test_run_open_refuses_a_folder_that_is_not_a_run(tmp_path):
    from textclf import runs
    from textclf.errors import RunError

    with pytest.raises(RunError, match="not a textclf run directory"):
        runs.Run.open(tmp_path)


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_run_files_follow_the_umask_set_after_import(tmp_path, mask):
    from textclf import runs

    old = os.umask(mask)
    try:
        runs.write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o666 & ~mask
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": 1}


def test_a_listener_with_only_some_hooks_hears_them(tmp_path):
    from textclf.config import resolve_config
    from textclf.training import run_training

    train, evaluation = ag_split(tmp_path, 12, 3)

    class EpochsOnly:  # no on_start, on_batch, on_status or on_note
        def __init__(self):
            self.epochs = []

        def on_epoch(self, epoch, logs):
            self.epochs.append((epoch, sorted(logs)))

    config = resolve_config({"model": "transformer", "data": {"train": f"csv:{train}", "eval": f"csv:{evaluation}"},
                             "training": {"epochs": 2, "global_batch_size": 16, "patience": 0},
                             "model_params": {"embed_dim": 8, "num_heads": 1, "ff_dim": 8, "max_length": 16,
                                              "vocab_size": 200}})
    listener = EpochsOnly()
    result = run_training(config, runs_root=tmp_path / "runs", listener=listener)
    assert [e for e, _ in listener.epochs] == [0, 1]
    assert "val_loss" in listener.epochs[0][1]
    assert result.metrics["epochs_run"] == 2


def test_the_batch_used_per_replica_is_the_batch_recorded(tmp_path):
    from textclf.runs import Run

    train, evaluation = ag_split(tmp_path, 10, 2)
    args = TINY[:-2]  # without its --batch-size
    assert TINY[-2] == "--batch-size"
    result = cli("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--epochs", 1,
                 "--batch-size", 32, "--per-replica-batch-size", 8, "--runs-root", tmp_path / "runs", *args)
    assert result.exit_code == 0, result.output
    run = Run.open(tmp_path / "runs" / "latest")
    assert run.config["training"]["global_batch_size"] == 8  # one CPU replica × 8, not the 32 asked for
    assert run.config["runtime"]["per_replica_batch_size"] == 8


def test_a_bert_preset_refuses_a_model_that_is_not_bert(tmp_path):
    result = cli("train-bert-frozen", "--model", "transformer", "--data", "sample", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "train-bert-frozen needs a BERT model", "transformer is not one",
                          "textclf train --model transformer", code=1)
    assert not (tmp_path / "runs").exists()


def test_a_preset_and_an_experiment_are_refused_together(tmp_path):
    (tmp_path / "x.yaml").write_text("experiments:\n  a: {model: transformer}\n")
    result = cli("train-transformer", "--experiment", "a", "--experiments-file", tmp_path / "x.yaml",
                 "--data", "sample", "--runs-root", tmp_path / "runs")
    assert_one_line_error(result, "train-transformer", "cannot run experiment 'a'", "textclf train --experiment a")


def test_weight_decay_belongs_to_adamw():
    from textclf.config import resolve_config
    from textclf.errors import ConfigError

    with pytest.raises(ConfigError, match="weight decay is AdamW's"):
        resolve_config({"model": "transformer", "training": {"optimizer": "adam", "weight_decay": 0.01}})
    # A model whose defaults are AdamW with decay, asked for Adam: the decay does not come along.
    bert = resolve_config({"model": "bert-small", "training": {"optimizer": "adam"}})
    assert bert.training.optimizer == "adam" and bert.training.weight_decay == 0
    assert resolve_config({"model": "bert-small"}).training.weight_decay > 0


def test_resume_run_refuses_other_settings_naming_them(tmp_path):
    from textclf.errors import ConfigError
    from textclf.training import resume_run

    with pytest.raises(ConfigError, match=r"drop the other config options \(experiment, training.learning_rate; "
                                          r"--epochs N may extend it\)"):
        resume_run(tmp_path, {"training": {"epochs": 3, "learning_rate": 0.1}, "experiment": "a"})


def test_interrupted_run_finds_the_newest_stopped_run_of_the_same_config(tmp_path):
    from textclf import runs
    from textclf.errors import Interrupted

    for config, state in (({"v": 1}, "failed"), ({"v": 1}, "complete"), ({"v": 2}, "failed")):
        with pytest.raises(Interrupted) if state == "failed" else _nothing():
            with runs.start(tmp_path, "e", config, ["a"], experiment="e") as run:
                if state == "failed":
                    raise KeyboardInterrupt
                run.mark("complete")
    found = runs.interrupted_run(tmp_path, "e", {"v": 1})
    assert found is not None and runs.Run(found).config == {"v": 1}
    assert runs.Run(found).info["error"] == "interrupted"
    assert runs.interrupted_run(tmp_path, "e", {"v": 3}) is None
    assert runs.interrupted_run(tmp_path, "other", {"v": 1}) is None


def _nothing():
    import contextlib

    return contextlib.nullcontext()


def _tiny_config(train, evaluation, **training):
    from textclf.config import resolve_config

    return resolve_config({"model": "transformer", "data": {"train": f"csv:{train}", "eval": f"csv:{evaluation}"},
                           "training": {"epochs": 2, "global_batch_size": 16, "patience": 0, **training},
                           "model_params": {"embed_dim": 8, "num_heads": 1, "ff_dim": 8, "max_length": 16,
                                            "vocab_size": 200}})


def test_epoch_validation_logs_what_keras_evaluate_computes():
    import numpy as np

    from textclf._tf import keras, tf
    from textclf.data.pipeline import Batches
    from textclf.task import accuracy_metric as _accuracy_metric
    from textclf.training import EpochValidation, TrainTimer

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 6)).astype("float32"), rng.integers(0, 3, size=50)
    model = keras.Sequential([keras.Input((6,)),
                              keras.layers.Dense(3, activation="softmax",
                                                 kernel_regularizer=keras.regularizers.L2(0.1))])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(), metrics=[_accuracy_metric(False)])
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)  # a short last batch: weighting matters
    timer = TrainTimer()
    check = EpochValidation(Batches(data, 4), y, model.loss, _accuracy_metric(False), timer)
    check.set_model(model)
    timer.on_epoch_begin(0)
    logs = {}
    check.on_epoch_end(0, logs)
    expected = model.evaluate(data, verbose=0, return_dict=True)
    assert logs["val_loss"] == pytest.approx(expected["loss"], rel=1e-5)  # the L2 term included
    assert logs["val_accuracy"] == pytest.approx(expected["accuracy"])
    assert np.allclose(check.probs, model.predict(x, verbose=0), atol=1e-6)
    assert check.seconds > 0 and timer._excluded == pytest.approx(check.seconds)


def test_the_eval_data_is_predicted_once_when_the_epochs_validate_on_it(tmp_path, monkeypatch):
    from textclf._tf import keras
    from textclf.training import run_training

    train, evaluation = ag_split(tmp_path, 12, 3)
    calls = []
    original = keras.Model.predict

    def counting(self, *args, **kwargs):
        calls.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "predict", counting)
    result = run_training(_tiny_config(train, evaluation), runs_root=tmp_path / "runs")
    assert len(calls) == 2  # one validation pass per epoch, no third pass for the report
    assert result.metrics["eval_from_last_validation"] is True
    assert result.metrics["accuracy"] == pytest.approx(result.history["val_accuracy"][-1], abs=1e-6)
    assert result.metrics["validation_seconds"] > 0


def test_a_restored_best_epoch_is_evaluated_again(tmp_path):
    from textclf.training import run_training

    train, evaluation = ag_split(tmp_path, 12, 3)
    # no later epoch beats the first by min_delta 10: epoch 1's weights come back, the last
    # epoch's validation predictions are stale and the report predicts again
    config = _tiny_config(train, evaluation, epochs=3, restore_best=True, min_delta=10.0)
    result = run_training(config, runs_root=tmp_path / "runs")
    metrics, history = result.metrics, result.history
    assert metrics["best_epoch"] == 1 and metrics["epochs_run"] == 3
    assert metrics["eval_from_last_validation"] is False
    assert metrics["accuracy"] == pytest.approx(history["val_accuracy"][0], abs=1e-6)



def test_a_run_lock_is_exclusive_released_and_not_kept_by_forked_children(tmp_path, monkeypatch):
    import errno
    import signal

    from textclf import runs

    first = runs.lock_dir(tmp_path, "busy")
    with pytest.raises(runs.RunError, match="busy"):
        runs.lock_dir(tmp_path, "busy")
    ready, told = os.pipe()
    child = os.fork()
    if child == 0:  # a forked worker (liblinear's fits) outliving its parent's lock
        import time

        os.write(told, b"x")  # the fork hooks have run
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(ready, 1) == b"x"
        runs.release(first)
        second = runs.lock_dir(tmp_path, "busy")  # free although the child still runs
        assert second is not None
        runs.release(second)
    finally:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)

    import fcntl

    def no_flock(fh, how):  # e.g. NFS without lock support: no lock, never "busy"
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_flock)
    assert runs.lock_dir(tmp_path, "busy") is None


def test_an_explicit_run_directory_must_be_new_or_empty(tmp_path):
    from textclf import runs
    from textclf.errors import RunError

    (tmp_path / "a-file").write_text("x")
    with pytest.raises(RunError, match="the run directory .*a-file is a file; give a new or empty directory"):
        runs.new_run_dir(tmp_path, "m", tmp_path / "a-file")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes").write_text("x")
    with pytest.raises(RunError, match="already exists and is not empty"):
        runs.new_run_dir(tmp_path, "m", tmp_path / "full")
    (tmp_path / "empty").mkdir()
    assert runs.new_run_dir(tmp_path, "m", tmp_path / "empty") == tmp_path / "empty"


def test_latest_never_replaces_a_users_file(tmp_path):
    """--run-dir sub/myrun points sub/latest at it, unless sub/latest is the user's own file or folder."""
    from textclf import runs

    (tmp_path / "myrun").mkdir()
    (tmp_path / "latest").write_text("my notes")
    runs.update_latest(tmp_path / "myrun")
    assert (tmp_path / "latest").read_text() == "my notes"
    (tmp_path / "latest").unlink()
    runs.update_latest(tmp_path / "myrun")
    assert (tmp_path / "latest").is_symlink() and (tmp_path / "latest").resolve() == (tmp_path / "myrun").resolve()
