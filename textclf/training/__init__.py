"""Training: `train(config)` is the one entry (a run, a group of runs, or an interrupted experiment
continued), used by every train command, `experiments run` and `tune`.

The package, one module per step:

- `run.py`: `train`, `run_training` (the named steps of one run), `resume_run`, `run_group`;
- `data.py`: the run's examples (fit, validation and eval parts) and class weights;
- `steps.py`: build the model, prepare its inputs, fit, finish (evaluate and save);
- `native.py`: ngram-linear with its exact solver, without TensorFlow;
- `hooks.py`: what a run reports while it trains (Listener) and what it produced (RunResult).

The Keras side (checkpoints, early stopping, validation, timing) is textclf.callbacks.
"""

from textclf.training.data import MAX_CLASS_WEIGHT, MULTILABEL_VALIDATION, class_weights
from textclf.training.hooks import Listener, RunResult
from textclf.training.native import trains_without_tensorflow
from textclf.training.run import (GroupResult, config_epochs, group_members, resume_run, run_group, run_name,
                                  run_training, train)

__all__ = ["MAX_CLASS_WEIGHT", "MULTILABEL_VALIDATION", "GroupResult", "Listener", "RunResult", "class_weights",
           "config_epochs", "group_members", "resume_run", "run_group", "run_name", "run_training",
           "trains_without_tensorflow", "train"]

# Defined in textclf.callbacks (Keras), importable from here as before this package stopped importing TensorFlow.
_FROM_CALLBACKS = frozenset(["EarlyStopping", "NanGuard", "EpochCheckpoint", "_DenseGradients", "TrainTimer",
                             "EpochValidation", "_ListenerCallback"])


def __getattr__(name: str):
    """The Keras callbacks live in textclf.callbacks (imported on first use: the default model trains
    without TensorFlow); `from textclf.training import TrainTimer` still works. Any other missing name
    (e.g. a hasattr probe) imports nothing."""
    if name not in _FROM_CALLBACKS:
        raise AttributeError(f"module 'textclf.training' has no attribute {name!r}")
    import textclf.callbacks as callbacks

    return getattr(callbacks, name)
