"""`textclf train` and its presets (train-transformer, …): one options signature, one training path.

This module only parses options and renders: the config layering, the presets and the resume
rules are the library's (textclf.config, textclf.experiments, textclf.training).
"""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any, Optional

import typer

from textclf.cli._render import err, run_with_progress, train_and_show

app = typer.Typer()

DATA = "Data"
TRAIN = "Training"
MODEL = "Model sizes"
RUN = "Run directory"
RUNTIME = "Devices and distribution"
COMPUTE = "Compilation and determinism"  # apart from RUNTIME: their --no-… column would squeeze its names
EXPERIMENT = "Experiments and resume"

# Options that are not config fields: where the config comes from and where the run goes.
_RUN_OPTIONS = ("experiment", "experiments_file", "resume", "set_", "run_dir", "runs_root")


def _source_options(
    model: Annotated[Optional[str], typer.Option(
        help="Registered model name (see `textclf models list`), or auto: chosen from the training data's "
             "samples / median words per sample (default: auto).")] = None,
    experiment: Annotated[Optional[str], typer.Option(
        help="Start from this experiment of the experiments file; options given here override it.",
        rich_help_panel=EXPERIMENT)] = None,
    experiments_file: Annotated[str, typer.Option(
        help="The experiments file.", rich_help_panel=EXPERIMENT)] = "experiments.yaml",
    resume: Annotated[Optional[str], typer.Option(
        help="Continue an interrupted run after its last completed epoch, with its saved config (--epochs N "
             "extends it to N epochs).",
        rich_help_panel=EXPERIMENT)] = None,
    seeds: Annotated[Optional[int], typer.Option(
        help="Train N runs that differ only in the seed (seed, seed+1, …), grouped; report mean ± sd and "
             "the 95% interval.", rich_help_panel=EXPERIMENT)] = None,
    folds: Annotated[Optional[int], typer.Option(
        help="k-fold cross-validation on the training data (stratified, seeded): K grouped runs, each "
             "evaluated on its held-out fold.", rich_help_panel=EXPERIMENT)] = None,
) -> None:
    """Where the config comes from: the model, an experiment, a resume, seeds and folds.
    (A signature only: see _command.)"""


def _data_options(
    data: Annotated[Optional[str], typer.Option(
        help="Training data: sample, tfds:NAME[:SPLIT], csv:PATH, tsv:PATH or jsonl:PATH "
             "(default: tfds:ag_news_subset).", rich_help_panel=DATA)] = None,
    eval_data: Annotated[Optional[str], typer.Option(
        help="Eval data spec (default: the source's test split, else a held-out part of --data).",
        rich_help_panel=DATA)] = None,
    text_field: Annotated[Optional[list[str]], typer.Option(
        help="Text column/feature; repeat to join several with a space.", rich_help_panel=DATA)] = None,
    label_field: Annotated[Optional[str], typer.Option(help="Label column/feature (default: label).",
                                                       rich_help_panel=DATA)] = None,
    label_separator: Annotated[Optional[str], typer.Option(
        help="Joins several labels in one CSV/TSV label field: multi-label data (default: |; \"\" never "
             "splits). A JSONL label list is multi-label too.", rich_help_panel=DATA)] = None,
    eval_fraction: Annotated[Optional[float], typer.Option(
        help="Fraction held out for eval when there is no eval data (default: 0.1).", rich_help_panel=DATA)] = None,
    tfds_data_dir: Annotated[Optional[str], typer.Option(
        help="Where tfds datasets are (or get) prepared.", rich_help_panel=DATA)] = None,
    max_text_chars: Annotated[Optional[int], typer.Option(
        help="Refuse a text longer than this many characters when reading the data (default: 2,000,000).",
        rich_help_panel=DATA)] = None,
) -> None:
    """The data options. (A signature only: see _command.)"""


def _training_options(
    epochs: Annotated[Optional[int], typer.Option(help="Passes over the training data.", rich_help_panel=TRAIN)] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Global batch size.", rich_help_panel=TRAIN)] = None,
    learning_rate: Annotated[Optional[float], typer.Option(help="Peak learning rate.", rich_help_panel=TRAIN)] = None,
    optimizer: Annotated[Optional[str], typer.Option(help="adam or adamw.", rich_help_panel=TRAIN)] = None,
    weight_decay: Annotated[Optional[float], typer.Option(help="AdamW weight decay.", rich_help_panel=TRAIN)] = None,
    schedule: Annotated[Optional[str], typer.Option(help="constant, linear or cosine decay.",
                                                    rich_help_panel=TRAIN)] = None,
    warmup: Annotated[Optional[float], typer.Option(
        help="Linear warmup: a fraction of all steps (<1) or a number of steps.", rich_help_panel=TRAIN)] = None,
    seed: Annotated[Optional[int], typer.Option(help="Seed for shuffling and initialisation.",
                                                rich_help_panel=TRAIN)] = None,
    class_weight: Annotated[Optional[str], typer.Option(
        help="none, balanced (n / (classes × count) per class) or a JSON file {label: weight} (default: none).",
        rich_help_panel=TRAIN)] = None,
    calibration: Annotated[Optional[str], typer.Option(
        help="temperature: fit a temperature on the validation part (>= 100 texts) so the probabilities are "
             "calibrated, in the saved model; none: the model's own (default: temperature).",
        rich_help_panel=TRAIN)] = None,
    patience: Annotated[Optional[int], typer.Option(
        help="Stop after this many epochs without improving val_loss (0: never).", rich_help_panel=TRAIN)] = None,
    min_delta: Annotated[Optional[float], typer.Option(
        help="Early stopping: an epoch counts as better only by more than this.", rich_help_panel=TRAIN)] = None,
    restore_best: Annotated[Optional[bool], typer.Option(
        "--restore-best/--no-restore-best", help="Keep the weights of the best epoch, not the last.",
        rich_help_panel=TRAIN)] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override any config field, e.g. --set training.epochs=3 (repeatable).",
        rich_help_panel=TRAIN)] = None,
) -> None:
    """The training options. (A signature only: see _command.)"""


def _model_options(
    max_length: Annotated[Optional[int], typer.Option(help="Longest token sequence kept.",
                                                      rich_help_panel=MODEL)] = None,
    vocab_size: Annotated[Optional[int], typer.Option(help="Vocabulary size.", rich_help_panel=MODEL)] = None,
    embed_dim: Annotated[Optional[int], typer.Option(help="Embedding width.", rich_help_panel=MODEL)] = None,
    num_heads: Annotated[Optional[int], typer.Option(help="Attention heads.", rich_help_panel=MODEL)] = None,
    ff_dim: Annotated[Optional[int], typer.Option(help="Feed-forward width.", rich_help_panel=MODEL)] = None,
    num_layers: Annotated[Optional[int], typer.Option(help="Transformer blocks.", rich_help_panel=MODEL)] = None,
    dropout: Annotated[Optional[float], typer.Option(help="Dropout rate.", rich_help_panel=MODEL)] = None,
    encoder: Annotated[Optional[str], typer.Option(
        help="BERT models: TF Hub handle, SavedModel path or imported model name.", rich_help_panel=MODEL)] = None,
    preprocessor: Annotated[Optional[str], typer.Option(
        help="BERT models: the matching preprocessing model (default: the encoder's own or "
             "bert_en_uncased_preprocess/3).", rich_help_panel=MODEL)] = None,
    pooling: Annotated[Optional[str], typer.Option(help="BERT models: mean, pooled or cls.",
                                                   rich_help_panel=MODEL)] = None,
) -> None:
    """The model-size options. (A signature only: see _command.)"""


def _runtime_options(
    strategy: Annotated[Optional[str], typer.Option(
        help="auto, default, one_device, mirrored, multi_worker (TF_CONFIG) or tpu.", rich_help_panel=RUNTIME)] = None,
    per_replica_batch_size: Annotated[Optional[int], typer.Option(
        help="Batch per replica; the global batch becomes this × replicas.", rich_help_panel=RUNTIME)] = None,
    precision: Annotated[Optional[str], typer.Option(
        help="auto, float32, mixed_float16 or mixed_bfloat16. auto: mixed_float16 on GPUs of compute capability "
        ">= 7.0, mixed_bfloat16 on TPU and for frozen BERT encoders on CPUs with bf16 instructions, else float32.",
        rich_help_panel=RUNTIME)] = None,
    jit_compile: Annotated[Optional[bool], typer.Option(
        "--jit-compile/--no-jit-compile", help="Compile the train step with XLA.", rich_help_panel=COMPUTE)] = None,
    deterministic: Annotated[Optional[bool], typer.Option(
        "--deterministic/--no-deterministic", help="Deterministic ops: same seed and data, same numbers.",
        rich_help_panel=COMPUTE)] = None,
) -> None:
    """The device and distribution options. (A signature only: see _command.)"""


def _run_dir_options(
    run_dir: Annotated[Optional[str], typer.Option(help="Write the run here (default: RUNS_ROOT/<time>-<model>).",
                                                   rich_help_panel=RUN)] = None,
    runs_root: Annotated[str, typer.Option(help="Where runs and `latest` live.", rich_help_panel=RUN)] = "runs",
) -> None:
    """Where the run is written. (A signature only: see _command.)"""


# The options of `train` and of every preset, by help panel: _command joins their signatures.
_OPTION_GROUPS = (_source_options, _data_options, _training_options, _model_options, _runtime_options, _run_dir_options)


def _train(options: dict[str, Any], preset) -> None:
    from textclf import config as cfg
    from textclf.experiments import train_config
    from textclf.training import resume_run

    flags = {name: options.pop(name) for name in _RUN_OPTIONS}
    if preset is not None and options["model"] == preset.model:  # the preset's default, not the user's choice
        options["model"] = None
    layer = cfg.options_layer(options)
    sets = cfg.parse_sets(flags["set_"] or [])
    if flags["resume"] is not None:
        given = {"experiment": flags["experiment"], "run_dir": flags["run_dir"]}
        overrides = cfg.deep_merge(layer, sets, {k: v for k, v in given.items() if v is not None})
        run_with_progress(lambda listener: resume_run(flags["resume"], overrides, listener=listener,
                                                                   runs_root=flags["runs_root"]))
        return
    config = train_config(layer, sets, preset=preset, experiment=flags["experiment"],
                          experiments_file=flags["experiments_file"])
    if config.selection:
        err.print(f"model auto: {config.selection['reason']}", highlight=False)
    train_and_show(config=config, runs_root=flags["runs_root"], run_dir=flags["run_dir"],
                   experiment=flags["experiment"])


def _command(name: str, doc: str, preset=None):
    """The command `name`: the option groups' signatures (the model's default is the preset's), one path."""

    def command(**options: Any) -> None:
        _train(options, preset)

    params = []
    for group in _OPTION_GROUPS:
        hints = typing.get_type_hints(group, include_extras=True)
        params += [p.replace(annotation=hints[n], default=preset.model if preset and n == "model" else p.default)
                   for n, p in inspect.signature(group).parameters.items()]
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = name.replace("-", "_")
    command.__doc__ = doc
    app.command(name)(command)
    return command


def _register() -> None:
    from textclf.experiments import PRESETS

    _command("train", "Train a model, evaluate it on the eval data and write a run directory.")
    for preset in PRESETS.values():
        _command(preset.name, preset.description, preset)


_register()
