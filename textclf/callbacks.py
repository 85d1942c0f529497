"""The Keras side of training: callbacks (checkpoints, early stopping, validation, timing, progress)
and the multi-worker train step (the task's loss and metric: textclf.task). Imported by textclf.training only for models
that train with Keras (the default n-gram model trains without TensorFlow)."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np

from textclf import compat, runs
from textclf._tf import keras
from textclf.errors import RunError, TextclfError, raise_deferred_termination, write_failure


class EarlyStopping:
    """Early stopping as Keras' EarlyStopping decides it, recomputed from the history (so it survives a resume).

    An epoch improves on the best so far only by more than `min_delta` on `monitor`; after
    `patience` epochs without one, training stops (patience 0: never).
    """

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.best_epoch: int | None = None  # 1-based

    def replay(self, history: dict[str, list[float]]) -> int:
        """Set the best epoch from the history; the epochs since it."""
        values = history.get(self.cfg.monitor, [])
        delta = self.cfg.min_delta
        better = (lambda a, b: a < b - delta) if self.cfg.monitor.endswith("loss") else (lambda a, b: a > b + delta)
        best, wait = None, 0
        for i, v in enumerate(values):
            if best is None or better(v, values[best - 1]):
                best, wait = i + 1, 0
            else:
                wait += 1
        self.best_epoch = best
        return wait

    def should_stop(self, history: dict[str, list[float]]) -> bool:
        """Patience used up (this also sets best_epoch)."""
        wait = self.replay(history)
        return self.cfg.patience > 0 and wait >= self.cfg.patience


class NanGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss or epoch metric; `nan_epoch` says where (1-based).

    It must come before EpochCheckpoint in the callback list: a diverged epoch is never checkpointed.
    """

    def __init__(self) -> None:
        super().__init__()
        self.nan_epoch: int | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        raise_deferred_termination()  # a SIGTERM that arrived where it could not be raised
        if logs and not math.isfinite(float(logs.get("loss", 0.0))):
            self.nan_epoch = self.nan_epoch or self._epoch + 1
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        if self.nan_epoch is not None or not all(math.isfinite(float(v)) for v in (logs or {}).values()):
            self.nan_epoch = self.nan_epoch or epoch + 1
            self.model.stop_training = True


class EpochCheckpoint(keras.callbacks.Callback):
    """Makes every finished epoch durable, so a run can resume after it.

    After each epoch: progress.json (history and training seconds so far) is written, then a
    checkpoint of the weights, the optimizer (its step count drives the learning-rate
    schedule) and the dropout RNG state; with `stopping` it also keeps the best epoch's
    weights (restore_best) and stops when its patience is used up. `restore()` returns the
    epochs to skip. `timer` (and `guard`) must come before this callback in the callback list.
    """

    def __init__(self, directory: Path, model: keras.Model, timer: TrainTimer, *, guard: NanGuard | None = None,
                 stopping: EarlyStopping | None = None) -> None:
        from textclf._tf import tf

        super().__init__()
        self.directory, self.timer, self.guard, self.stopping = Path(directory), timer, guard, stopping
        self.progress_path = self.directory / runs.PROGRESS_FILE
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="completed_epochs")
        self.ckpt = tf.train.Checkpoint(model=model, optimizer=model.optimizer, rng=compat.random_generators(model),
                                        epoch=self.epoch)
        self.manager = tf.train.CheckpointManager(self.ckpt, str(self.directory / "last"), max_to_keep=1)
        self.best_ckpt = tf.train.Checkpoint(model=model)
        self.best_manager = tf.train.CheckpointManager(self.best_ckpt, str(self.directory / "best"), max_to_keep=1)
        self.history: dict[str, list[float]] = {}
        self.seconds: list[float] = []  # training seconds up to the end of each epoch
        self.resumed_seconds = 0.0
        self.directory.mkdir(parents=True, exist_ok=True)

    def resume(self, recorded: int, say) -> int:
        """restore(), saying so when progress.json recorded more epochs (`recorded`, read before anything
        rewrites it) than a checkpoint holds: checkpoints removed, or the last one never finished writing."""
        done = self.restore()
        if recorded > done:
            say(f"only {done} of the {recorded} epochs done have a checkpoint in {self.directory}" if done else
                f"no checkpoint of the {recorded} epochs done in {self.directory}: training starts again from epoch 1")
        return done

    def restore(self) -> int:
        """Load the last checkpoint (if any); the number of completed epochs."""
        path = self.manager.latest_checkpoint
        if path is None:
            return 0
        from textclf._tf import tf

        try:
            status = self.ckpt.restore(path).expect_partial()
        except (tf.errors.OpError, ValueError, IndexError, KeyError) as err:
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            raise TextclfError(f"cannot resume: the checkpoint in {self.directory} is unreadable ({first}); "
                               "the run cannot continue, train it again from the start") from None
        try:
            # The optimizer's variables exist before this (`compat.create_optimizer_slots`), so a checkpoint
            # without them (e.g. written by textclf's earlier optimizer class) is found here, not
            # silently resumed with fresh Adam moments.
            status.assert_existing_objects_matched()
        except AssertionError:
            raise TextclfError(f"cannot resume: the checkpoint in {self.directory} does not match this model and "
                               "optimizer (written by another textclf version?); start the run again") from None
        done = int(self.epoch.numpy())
        progress = runs.read_object(self.progress_path)
        self.history = {k: list(v)[:done] for k, v in progress.get("history", {}).items()}
        self.seconds = list(progress.get("seconds", []))[:done]
        self.resumed_seconds = self.seconds[-1] if self.seconds else 0.0
        if self.stopping is not None:
            self.stopping.replay(self.history)
        return done

    def train_seconds(self) -> float:
        """Training time over all epochs, across resumes."""
        return self.resumed_seconds + self.timer.train_seconds

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.nan_epoch is not None:
            return  # never checkpoint a diverged model
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.seconds.append(self.train_seconds())
        stop = self.stopping is not None and self.stopping.should_stop(self.history)
        if self.stopping is not None and self.stopping.cfg.restore_best and self.stopping.best_epoch == epoch + 1:
            self.best_manager.save(checkpoint_number=epoch + 1)
        from textclf._tf import tf

        try:
            runs.write_json(self.progress_path, {"epochs_done": epoch + 1, "history": self.history,
                                                 "seconds": self.seconds})
            self.epoch.assign(epoch + 1)
            self.manager.save(checkpoint_number=epoch + 1)
        except (OSError, tf.errors.OpError) as err:  # e.g. SaveV2 on a full disk
            raise RunError(f"cannot write the run in {self.directory.parent}: {write_failure(err)}") from None
        self.model.stop_training = stop

    def restore_best(self) -> None:
        """The weights of the best epoch (restore_best)."""
        if self.best_manager.latest_checkpoint:
            self.best_ckpt.restore(self.best_manager.latest_checkpoint).expect_partial()


class _DenseGradients(keras.Model):
    """Train step that all-reduces sparse (embedding) gradients as dense tensors.

    Across workers, IndexedSlices gradients differ in shape from batch to batch and the
    collective all-reduce of MultiWorkerMirroredStrategy rejects that.
    """

    def train_step(self, data):
        from textclf._tf import tf

        x, y = data[0], data[1]
        sample_weight = data[2] if len(data) > 2 else None  # from class_weight
        optimizer = self.optimizer
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x, y, y_pred, sample_weight)
            scaled = optimizer.get_scaled_loss(loss) if hasattr(optimizer, "get_scaled_loss") else loss
        grads = tape.gradient(scaled, self.trainable_variables)
        if hasattr(optimizer, "get_unscaled_gradients"):
            grads = optimizer.get_unscaled_gradients(grads)
        grads = [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]
        optimizer.apply_gradients(zip(grads, self.trainable_variables))
        return self.compute_metrics(x, y, y_pred, sample_weight)


class TrainTimer(keras.callbacks.Callback):
    """Seconds spent on training batches (each epoch minus its validation pass, see `exclude`)."""

    def __init__(self) -> None:
        super().__init__()
        self.train_seconds = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start, self._excluded = time.perf_counter(), 0.0

    def exclude(self, seconds: float) -> None:
        """Seconds of this epoch that were not training (called before this callback's on_epoch_end)."""
        self._excluded += seconds

    def on_epoch_end(self, epoch, logs=None):
        self.train_seconds += time.perf_counter() - self._epoch_start - self._excluded


class EpochValidation(keras.callbacks.Callback):
    """Each epoch's validation pass, computed as `fit(validation_data=...)` does, its predictions kept.

    At the end of every epoch the model predicts `batches` (rows back in the order of `labels`) and the logs
    get `val_loss` (the compiled loss plus the model's regularization losses, averaged over the
    examples, as Keras' evaluate computes it) and `val_<metric>`. The last epoch's
    probabilities stay in `probs`: when the epochs validate on the eval data, they are the final
    model's eval predictions, and the report uses them instead of predicting a second time.
    It must come first in the callback list (the others read the val_ logs; `timer` excludes it).
    """

    def __init__(self, batches, labels: np.ndarray, loss, metric, timer: TrainTimer) -> None:
        super().__init__()
        self.batches, self.labels, self.metric, self.timer = batches, labels, metric, timer
        self.loss = keras.losses.get(loss)
        self.probs: np.ndarray | None = None
        self.seconds = 0.0

    def forget(self) -> None:
        """The weights changed after the last epoch (restore_best, refit): its predictions are stale."""
        self.probs = None

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        from textclf._tf import tf

        started = time.perf_counter()
        probs = self.batches.in_input_order(self.model.predict(self.batches.dataset, verbose=0))
        y_true = tf.constant(self.labels)
        y_pred = tf.constant(probs, dtype=tf.float32)
        loss = tf.reduce_mean(self.loss(y_true, y_pred))  # a loss function (not a Loss) gives one per example
        if self.model.losses:
            loss += tf.add_n(self.model.losses)
        self.metric.reset_state()
        self.metric.update_state(y_true, y_pred)
        logs["val_loss"] = float(loss)
        logs[f"val_{self.metric.name}"] = float(self.metric.result())
        self.probs = probs
        seconds = time.perf_counter() - started
        self.seconds += seconds
        self.timer.exclude(seconds)


class _ListenerCallback(keras.callbacks.Callback):
    def __init__(self, hooks) -> None:  # training._Hooks
        super().__init__()
        self.hooks = hooks
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self.hooks.on_batch(self._epoch, batch + 1, {k: float(v) for k, v in (logs or {}).items()})

    def on_epoch_end(self, epoch, logs=None):
        self.hooks.on_epoch(epoch, {k: float(v) for k, v in (logs or {}).items()})
