"""`textclf distill TEACHER --student MODEL`: a student run trained on a teacher run's probabilities."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from textclf.cli._render import train_and_show

app = typer.Typer()

TRANSFER = "Transfer set and loss"
TRAIN = "Training"
RUN = "Run directory"


@app.command("distill")
def distill(
    teacher: Annotated[str, typer.Argument(
        metavar="TEACHER", help="The teacher run (a run directory, a run's name, or a model or experiment name: "
                                "its newest complete run).", show_default=False)],
    student: Annotated[str, typer.Option(
        metavar="MODEL", help="The student: a model (see `textclf models list`) or an experiment of the "
                              "experiments file.")] = "transformer",
    unlabeled: Annotated[Optional[str], typer.Option(
        metavar="SPEC", help="More texts for the transfer set: a data spec (read as --data reads it; a label "
                             "column is optional and ignored) or a .txt file with one text per line.",
        rich_help_panel=TRANSFER)] = None,
    augment: Annotated[Optional[int], typer.Option(
        metavar="N", help="Augmented copies of each training text (masking, word substitution, n-gram sampling); "
                          "default: enough to bring a set under 20,000 texts to 20,000 (at most 4).",
        rich_help_panel=TRANSFER)] = None,
    budget: Annotated[Optional[int], typer.Option(
        metavar="N", help="At most this many texts in the transfer set: every training text, then unlabeled and "
                          "augmented ones up to it (default 50,000).",
        rich_help_panel=TRANSFER)] = None,
    temperature: Annotated[Optional[float], typer.Option(
        metavar="T", help="Softmax temperature of the soft targets (default 2).", rich_help_panel=TRANSFER)] = None,
    alpha: Annotated[Optional[float], typer.Option(
        metavar="A", help="Weight of the gold labels' loss against the soft targets' (default 0.5; 0: soft "
                          "targets only).", rich_help_panel=TRANSFER)] = None,
    embeddings: Annotated[Optional[str], typer.Option(
        metavar="FROM", help="teacher: a student with word embeddings (transformer) starts them from the teacher's "
                             "pretrained input embedding of each word (a BERT teacher); random: from scratch "
                             "(default).",
        rich_help_panel=TRANSFER)] = None,
    seeds: Annotated[Optional[int], typer.Option(
        metavar="N", help="Train N students that differ only in the seed, grouped; report mean ± sd.",
        rich_help_panel=TRAIN)] = None,
    seed: Annotated[Optional[int], typer.Option(metavar="N", help="The student's seed.", rich_help_panel=TRAIN)] = None,
    epochs: Annotated[Optional[int], typer.Option(metavar="N", help="Epochs (default: the student's).",
                                                  rich_help_panel=TRAIN)] = None,
    set_: Annotated[Optional[list[str]], typer.Option(
        "--set", metavar="KEY=VALUE", help="Any config field, e.g. --set model_params.embed_dim=64 (repeatable).",
        rich_help_panel=TRAIN)] = None,
    experiments_file: Annotated[str, typer.Option(metavar="PATH", help="The experiments file.",
                                                  rich_help_panel=TRAIN)] = "experiments.yaml",
    run_dir: Annotated[Optional[str], typer.Option(metavar="PATH", help="Write the run here.",
                                                   rich_help_panel=RUN)] = None,
    runs_root: Annotated[str, typer.Option(metavar="PATH", help="Where runs and `latest` live (the teacher is "
                                                                "looked up here too).", rich_help_panel=RUN)] = "runs",
) -> None:
    """Train a fast student on a teacher run's probabilities (knowledge distillation), evaluated on the
    teacher's eval data. An interrupted student resumes with `textclf train --resume RUN`, its teacher
    probabilities read from the run."""
    from textclf import config as cfg
    from textclf.distillation import teacher_layer
    from textclf.experiments import train_config

    sets = _sets(set_ or [])
    layer = cfg.deep_merge(teacher_layer(teacher, runs_root), cfg.options_layer(
        {"unlabeled": unlabeled, "augment": augment, "budget": budget, "temperature": temperature, "alpha": alpha,
         "embeddings": embeddings, "seeds": seeds, "seed": seed, "epochs": epochs}))
    experiment = _student(student, layer, experiments_file)
    config = train_config(layer, sets, experiment=experiment, experiments_file=experiments_file)
    train_and_show(config=config, runs_root=runs_root, run_dir=run_dir, experiment=experiment)


def _sets(pairs: list[str]) -> dict:
    """--set's layer; distill.teacher is refused: the teacher is the TEACHER argument."""
    from textclf import config as cfg
    from textclf.errors import ConfigError

    sets = cfg.parse_sets(pairs)
    if isinstance(sets.get("distill"), dict) and "teacher" in sets["distill"]:
        raise ConfigError("--set distill.teacher: the teacher is distill's TEACHER argument; name it there only")
    return sets


def _student(student: str, layer: dict, experiments_file: str) -> str | None:
    """A model name goes into `layer`; an experiment's name is returned (the student starts from it)."""
    from textclf.errors import ConfigError, ModelError
    from textclf.experiments import load_experiments
    from textclf.models.catalog import MODELS
    from textclf.registry import unknown_name

    try:
        MODELS.get(student)
    except ModelError:
        if student not in load_experiments(experiments_file).experiments:
            raise ConfigError(unknown_name("model or experiment", student, MODELS.names()) +
                              " (or an experiment of the experiments file)") from None
        return student
    layer["model"] = student
    return None
