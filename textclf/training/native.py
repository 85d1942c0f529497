"""Training without TensorFlow: ngram-linear with its exact solver (features in numpy, LIBLINEAR)."""

from __future__ import annotations

import time


import numpy as np

from textclf import runs
from textclf.config import RunConfig
from textclf.training.data import _check_resumed_labels, _load_data, _validation_fraction
from textclf.training.hooks import RunResult, _Hooks, run_name
from textclf.training.steps import _save_run
from textclf.errors import ConfigError


def trains_without_tensorflow(config: RunConfig) -> bool:
    """The model's parameters are fitted by its family's solver without TensorFlow (ngram-linear, the
    default: numpy features and scikit-learn's liblinear); every other model trains with Keras."""
    return bool(config.model_params.solved_without_tensorflow)


def _run_native(config: RunConfig, *, runs_root, run_dir, hooks: _Hooks, resume: bool, experiment, group) -> RunResult:
    """Train a model that needs no TensorFlow (trains_without_tensorflow): load, features + solve, evaluate,
    save. The run holds the model as arrays (model-lite.npz, the numpy twin format) and no model.keras;
    its eval predictions come from the very code `evaluate` runs, so both give one number."""
    from textclf.data.sources import VALIDATION_PART, holdout_mask
    import importlib

    from textclf.models.catalog import MODELS

    solver = importlib.import_module(MODELS.get(config.model).family_spec().solver)
    fit_linear, make_features = solver.fit_linear, solver.make_features

    _check_native_runtime(config)
    started = time.perf_counter()
    # matplotlib is imported while the fits run in their processes (fit_linear's `idle`), not now: the
    # features hold the GIL (SST-2's took 2.0-2.5 s with the import beside them, 1.8 s without)
    data = _load_data(config, hooks, split=False, preload=False)
    load_seconds = time.perf_counter() - started
    _check_resumed_labels(resume, run_dir, data)
    train = data.train
    fraction = _validation_fraction(config.training, train)
    held = holdout_mask(train, fraction, config.training.seed, VALIDATION_PART) if fraction else None
    # The features before the run directory: texts without any n-gram leave no run behind.
    hooks.on_status("computing the n-gram features")
    features = make_features(config.model_params, train.texts, say=hooks.on_note,
                             progress=lambda done, total: hooks.on_work("computing the n-gram features", done, total))
    with runs.start(runs_root, experiment or run_name(config), config.to_dict(), list(train.label_names),
                    run_dir=run_dir, resume=resume, model=config.model, family=MODELS.get(config.model).family,
                    experiment=experiment, data=config.data.train,
                    eval_data=data.evaluation.source, runtime={"strategy": "none", "replicas": 1,
                                                               "precision": "float64 (liblinear)"},
                    **({"group": group} if group else {})) as run:
        n_held = int(held.sum()) if held is not None else 0
        hooks.on_start({"epochs": 0, "initial_epoch": 0, "steps": 0, "train_examples": len(train),
                        "eval_examples": len(data.evaluation), "validation_examples": n_held,
                        "labels": list(train.label_names), "run_dir": str(run.path),
                        "runtime": "CPU, liblinear (no TensorFlow)", "notes": []})
        hooks.on_status("fitting (liblinear)")
        from textclf.reports import preload_plotting

        solved = fit_linear(config.model_params, train.texts, train.labels, len(train.label_names), held,
                            class_weight=data.class_weight, say=hooks.on_note, features=features,
                            idle=preload_plotting)
        del features
        hooks.on_note(f"C {solved['c']:g} fitted on all {solved['train_examples']} training examples "
                      f"({solved['solve_seconds']:.1f} s of liblinear fits)")
        hooks.on_status("evaluating")
        started = time.perf_counter()
        validation = data.train.subset(held, "validation") if held is not None else None
        arrays, probs, val_probs, measured = _calibrated(config, solved, data, validation, hooks)
        metrics = _native_metrics(solved, load_seconds, time.perf_counter() - started)
        return _save_run(run, None, arrays, data, validation, probs, val_probs, solved["history"],
                         {**metrics, **measured}, hooks, solved=True)


def _calibrated(config: RunConfig, solved: dict, data, validation, hooks: _Hooks):
    """The arrays with the temperature the calibration step fits (training/calibrate.py), the eval
    probabilities as the arrays give them (what `evaluate` computes), the validation's, and the measures."""
    from textclf.training.calibrate import calibrate
    from textclf.twins import Twin

    texts = list(data.evaluation.texts)
    temperature, _, val_probs, measured = calibrate(config.training.calibration, solved["val_probabilities"],
                                                    validation, Twin(solved["arrays"]).probabilities(texts),
                                                    data.evaluation, hooks, scores=True, train=data.train)
    arrays = dict(solved["arrays"])
    if temperature is not None:
        arrays.update(temperature=np.array(temperature, np.float64),
                      temperature_multilabel=np.array(data.train.multilabel))
    return arrays, Twin(arrays).probabilities(texts), val_probs, measured


def _check_native_runtime(config: RunConfig) -> None:
    """Runtime settings a liblinear fit cannot honour are errors, not ignored; TF_CONFIG is checked as for
    Keras models."""
    from textclf.runtime import tf_config

    if config.runtime.strategy not in ("auto", "default") or config.runtime.precision not in ("auto", "float32"):
        raise ConfigError(f"{config.model} is fitted by liblinear on the CPU, without TensorFlow: "
                          "--strategy and --precision do not apply to it")
    workers = sum(len(hosts) for hosts in tf_config().get("cluster", {}).values())
    if workers > 1:
        raise ConfigError(f"{config.model} is fitted by liblinear in one process, but TF_CONFIG names a cluster "
                          f"of {workers} hosts: unset TF_CONFIG, or train a Keras model (e.g. --model ngram-mlp)")


def _native_metrics(solved: dict, load_seconds: float, eval_seconds: float) -> dict:
    """metrics.json's training part for a liblinear fit (the same keys as an epoch-trained run's)."""
    train_seconds = solved["feature_seconds"] + solved["solve_seconds"]
    return {"train_examples": solved["train_examples"], "train_seconds": train_seconds,
            "train_examples_per_second": solved["train_examples"] / max(train_seconds, 1e-9),
            "feature_seconds": solved["feature_seconds"], "solve_seconds": solved["solve_seconds"],
            "frozen_features_cached": True, "solver": "liblinear", "c": solved["c"],
            "c_tried": solved["history"]["c"], "epochs_run": 0,
            "refit_epochs": 0, "best_epoch": None, "stopped_early": False, "load_seconds": load_seconds,
            "build_seconds": 0.0, "prepare_seconds": 0.0, "eval_seconds": eval_seconds,
            "eval_from_last_validation": False}
