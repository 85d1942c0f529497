"""`textclf train` and its presets (train-transformer): one training path."""

from __future__ import annotations

import inspect
import typing
from typing import Annotated, Any, Optional

import typer

from textclf.cli import app
from textclf.cli._render import err, out, pct
from textclf.errors import ConfigError

DATA = "Data"
TRAIN = "Training"
MODEL = "Model sizes"
RUN = "Run directory"
RUNTIME = "Devices and distribution"


EXPERIMENT = "Experiments and resume"


def train(
    model: Annotated[Optional[str], typer.Option(
        help="Registered model name (see `textclf models list`), or auto: chosen from the training data's "
             "samples / median words per sample (default: auto).")] = None,
    experiment: Annotated[Optional[str], typer.Option(
        help="Start from this experiment of the experiments file; options given here override it.",
        rich_help_panel=EXPERIMENT)] = None,
    experiments_file: Annotated[str, typer.Option(
        help="The experiments file.", rich_help_panel=EXPERIMENT)] = "experiments.yaml",
    resume: Annotated[Optional[str], typer.Option(
        help="Continue an interrupted run directory after its last completed epoch (its saved config).",
        rich_help_panel=EXPERIMENT)] = None,
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
    eval_fraction: Annotated[Optional[float], typer.Option(
        help="Fraction held out for eval when there is no eval data (default: 0.1).", rich_help_panel=DATA)] = None,
    tfds_data_dir: Annotated[Optional[str], typer.Option(
        help="Where tfds datasets are (or get) prepared.", rich_help_panel=DATA)] = None,
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
    patience: Annotated[Optional[int], typer.Option(
        help="Stop after this many epochs without improving val_loss (0: never).", rich_help_panel=TRAIN)] = None,
    min_delta: Annotated[Optional[float], typer.Option(
        help="Early stopping: an epoch counts as better only by more than this.", rich_help_panel=TRAIN)] = None,
    restore_best: Annotated[Optional[bool], typer.Option(
        "--restore-best/--no-restore-best", help="Keep the weights of the best epoch, not the last.",
        rich_help_panel=TRAIN)] = None,
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
    strategy: Annotated[Optional[str], typer.Option(
        help="auto, default, one_device, mirrored, multi_worker (TF_CONFIG) or tpu.", rich_help_panel=RUNTIME)] = None,
    per_replica_batch_size: Annotated[Optional[int], typer.Option(
        help="Batch per replica; the global batch becomes this × replicas.", rich_help_panel=RUNTIME)] = None,
    precision: Annotated[Optional[str], typer.Option(
        help="auto, float32, mixed_float16 or mixed_bfloat16. auto: mixed_float16 on GPUs of compute capability "
        ">= 7.0, mixed_bfloat16 on TPU and for frozen BERT encoders on CPUs with bf16 instructions, else float32.",
        rich_help_panel=RUNTIME)] = None,
    jit_compile: Annotated[Optional[bool], typer.Option(
        "--jit-compile/--no-jit-compile", help="Compile the train step with XLA.", rich_help_panel=RUNTIME)] = None,
    deterministic: Annotated[Optional[bool], typer.Option(
        "--deterministic/--no-deterministic", help="Deterministic ops: same seed and data, same numbers.",
        rich_help_panel=RUNTIME)] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", help="Override any config field, e.g. --set training.epochs=3 (repeatable).",
        rich_help_panel=TRAIN)] = None,
    run_dir: Annotated[Optional[str], typer.Option(help="Write the run here (default: RUNS_ROOT/<time>-<model>).",
                                                   rich_help_panel=RUN)] = None,
    runs_root: Annotated[str, typer.Option(help="Where runs and `latest` live.", rich_help_panel=RUN)] = "runs",
) -> None:
    """Train a model, evaluate it on the eval data and write a run directory."""
    _train(locals(), preset_layer={})


def _train(options: dict[str, Any], preset_layer: dict[str, Any], default_model: str = "auto") -> None:
    """Options -> config layers -> one training run.

    Precedence, lowest first: model defaults < preset < yaml defaults < experiment <
    options < --set.
    """
    from textclf.config import resolve_config

    o = options
    cli_layer = _options_layer(
        model=o["model"],
        data={"train": o["data"], "eval": o["eval_data"], "text_fields": o["text_field"] or None,
              "label_field": o["label_field"], "eval_fraction": o["eval_fraction"],
              "tfds_data_dir": o["tfds_data_dir"]},
        training={"epochs": o["epochs"], "global_batch_size": o["batch_size"], "learning_rate": o["learning_rate"],
                  "optimizer": o["optimizer"], "weight_decay": o["weight_decay"], "schedule": o["schedule"],
                  "warmup": o["warmup"], "seed": o["seed"], "patience": o["patience"],
                  "min_delta": o["min_delta"], "restore_best": o["restore_best"]},
        runtime={"strategy": o["strategy"], "per_replica_batch_size": o["per_replica_batch_size"],
                 "precision": o["precision"], "jit_compile": o["jit_compile"], "deterministic": o["deterministic"]},
        model_params={k: o[k] for k in ("max_length", "vocab_size", "embed_dim", "num_heads", "ff_dim",
                                        "num_layers", "dropout", "encoder", "preprocessor", "pooling")},
    )
    sets = parse_sets(o["set_"] or [])
    if o["resume"] is not None:
        given = sorted(set(cli_layer) - {"model"} | set(sets)) + (["--experiment"] if o["experiment"] else []) \
            + (["--run-dir"] if o["run_dir"] else [])
        if given or (o["model"] not in (None, default_model)):
            raise ConfigError("--resume continues a run with its saved config; drop the other config options "
                              f"({', '.join(given or ['--model'])})")
        from textclf.training import resume_run

        _run_with_progress(lambda listener: resume_run(o["resume"], listener=listener))
        return
    layers: list[dict[str, Any]] = [preset_layer]
    if o["experiment"]:
        from textclf.experiments import load_experiments

        layers += load_experiments(o["experiments_file"]).layers(o["experiment"])
    config = resolve_config({"model": default_model}, *layers, cli_layer, sets)
    _run(config, runs_root=o["runs_root"], run_dir=o["run_dir"], experiment=o["experiment"])


def _options_layer(**groups: Any) -> dict[str, Any]:
    """Nested dict of the options the user gave (None = not given)."""
    layer: dict[str, Any] = {}
    for key, value in groups.items():
        if isinstance(value, dict):
            given = {k: v for k, v in value.items() if v is not None}
            if given:
                layer[key] = given
        elif value is not None:
            layer[key] = value
    return layer


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`a.b=value` strings -> nested dict (values coerced later by field type)."""
    layer: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE (e.g. training.epochs=3), got {item!r}")
        node = layer
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set for {part!r}")
        node[parts[-1]] = value
    return layer


def _run(config, *, runs_root: str, run_dir: str | None, experiment: str | None = None):
    from textclf.training import run_training

    if config.selection:
        err.print(f"model auto: {config.selection['reason']}", highlight=False)

    return _run_with_progress(lambda listener: run_training(
        config, runs_root=runs_root, run_dir=run_dir, listener=listener, experiment=experiment))


def _run_with_progress(train_fn):
    with _ProgressListener() as listener:
        result = train_fn(listener)
    _summary(result)
    return result


class _ProgressListener:
    """Draws one rich progress bar per epoch with running loss and accuracy."""

    def __enter__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.4f}"), TimeElapsedColumn(),
            console=err, transient=False,
        )
        self.task = None
        return self

    def __exit__(self, *exc):
        if self.progress.live.is_started:
            self.progress.stop()
        return False

    def on_status(self, message: str) -> None:
        if self.progress.console.is_terminal:  # chatter only for people, not for logs
            self.progress.console.print(f"[dim]{message}…[/]")

    def on_start(self, info: dict) -> None:
        self.info = info
        self.progress.start()  # only now: a failure while loading data prints just its error line
        self.progress.console.print(
            f"training on {info['train_examples']} examples, evaluating on {info['eval_examples']} "
            f"({len(info['labels'])} classes) → {info['run_dir']}")
        self.progress.console.print(info["runtime"])
        for note in info.get("notes", []):
            self.progress.console.print(note, highlight=False)
        if info.get("initial_epoch"):
            self.progress.console.print(f"resuming after epoch {info['initial_epoch']} of {info['epochs']}")

    def on_note(self, line: str) -> None:
        self.progress.console.print(line, highlight=False)

    def on_batch(self, epoch: int, step: int, logs: dict) -> None:
        if self.task is None:
            self.task = self.progress.add_task(
                f"epoch {epoch + 1}/{self.info['epochs']}", total=self.info["steps"], loss=0.0, acc=0.0)
        self.progress.update(self.task, completed=step, loss=logs.get("loss", 0.0), acc=logs.get("accuracy", 0.0))

    def on_epoch(self, epoch: int, logs: dict) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.info["steps"],
                                 description=f"epoch {epoch + 1}/{self.info['epochs']} "
                                             f"val_acc {logs.get('val_accuracy', float('nan')):.4f}")
        self.task = None


def _summary(result) -> None:
    from rich.table import Table

    m = result.metrics
    table = Table(title="run summary", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run", str(result.run_dir))
    table.add_row("model", result.info.get("model", ""))
    table.add_row("eval data", m["data"])
    table.add_row("accuracy", pct(m["accuracy"]))
    table.add_row("macro-F1", pct(m["macro_f1"]))
    table.add_row("train examples", str(m["train_examples"]))
    if m.get("solver"):
        tried = ", ".join(f"{c:g}" for c in m.get("c_tried", []))
        table.add_row("fit", f"L-BFGS, C {m['c']:g}" + (f" (chosen on validation from {tried})" if tried else ""))
    if m.get("stopped_early"):
        table.add_row("epochs", f"{m['epochs_run']} (stopped early; best epoch {m.get('best_epoch')})")
    table.add_row("training speed", f"{m['train_examples_per_second']:,.0f} examples/s")
    table.add_row("duration", f"{result.info.get('duration_seconds', 0):.1f} s")
    out.print(table)


def preset(name: str, doc: str, *, model: str, layer: dict[str, Any] | None = None):
    """A command that is `train` with another default model and a preset config layer.

    Same options, same code path; the preset sits above the model's defaults and below
    the user's options.
    """

    def command(**kwargs: Any) -> None:
        if kwargs["model"] == model:  # the preset's default, not the user's choice
            kwargs["model"] = None
        _train(kwargs, preset_layer=layer or {}, default_model=model)

    hints = typing.get_type_hints(train, include_extras=True)
    params = []
    for n, p in inspect.signature(train).parameters.items():
        p = p.replace(annotation=hints[n])
        params.append(p.replace(default=model) if n == "model" else p)
    command.__signature__ = inspect.Signature(params)
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__name__ = name.replace("-", "_")
    command.__doc__ = doc
    app.command(name)(command)
    return command


app.command("train")(train)
preset("train-transformer", "Train the Transformer from scratch (the lesson's first recipe); "
       "same as train --model transformer.", model="transformer")
preset("train-bert-frozen", "Train a classifier on a frozen BERT encoder with Adam (the lesson's second recipe).",
       model="bert-small",
       layer={"model_params": {"trainable": False},
              "training": {"optimizer": "adam", "learning_rate": 1e-3, "schedule": "constant", "warmup": 0,
                           "weight_decay": 0, "epochs": 3}})
preset("finetune-bert-adamw", "Fine-tune a BERT encoder with AdamW, linear warmup then linear decay "
       "(Model Garden's create_optimizer; the lesson's third recipe).", model="bert-small",
       layer={"model_params": {"trainable": True},
              "training": {"optimizer": "adamw", "learning_rate": 5e-5, "schedule": "linear", "warmup": 0.1,
                           "weight_decay": 0.01}})
