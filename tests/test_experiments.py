"""experiments.yaml: the shipped file resolves, precedence, strict validation at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from textclf.errors import ConfigError
from textclf.experiments import load_experiments

SHIPPED = Path(__file__).resolve().parents[1] / "experiments.yaml"


def test_every_shipped_experiment_resolves():
    loaded = load_experiments(SHIPPED)
    lesson = {"transformer", "bert-frozen", "bert-finetune-adamw", "bert-base-hf"}
    assert lesson <= set(loaded.experiments)
    assert len(loaded.experiments) > len(lesson)  # plus textclf's tuned recipes
    for name, experiment in loaded.experiments.items():
        assert experiment.description, name
        assert loaded.resolve(name).to_dict() == experiment.config.to_dict()
    ft = loaded.get("bert-finetune-adamw").config
    assert ft.training.learning_rate == 3e-5 and isinstance(ft.training.learning_rate, float)  # YAML "3e-5"
    assert (ft.training.optimizer, ft.training.schedule, ft.training.warmup) == ("adamw", "linear", 0.1)
    assert ft.model_params.trainable and not loaded.get("bert-frozen").config.model_params.trainable
    lesson_tf = loaded.get("transformer").config
    assert (lesson_tf.model_params.max_length, lesson_tf.model_params.vocab_size, lesson_tf.training.epochs) == (
        256,
        20000,
        1,
    )
    tuned = loaded.get("transformer-tuned").config
    assert (
        tuned.training.learning_rate == 2e-3 and tuned.model_params.max_length == 0
    )  # the model's defaults: from the data


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiments.yaml"
    path.write_text(text)
    return path


BASE = """
defaults:
  data: {train: sample}
  training: {epochs: 4, seed: 7}
experiments:
  small:
    description: a small one
    model: transformer
    model_params: {embed_dim: 16}
    training: {learning_rate: 5e-4}
  other:
    model: transformer
"""


def test_precedence_defaults_experiment_cli_set(tmp_path):
    loaded = load_experiments(write(tmp_path, BASE))
    cfg = loaded.resolve("small")
    assert (cfg.training.epochs, cfg.training.seed, cfg.training.learning_rate) == (4, 7, 5e-4)
    assert cfg.training.global_batch_size == 128  # the model's default, below the file's defaults
    assert cfg.model_params.embed_dim == 16 and cfg.data.train == "sample"
    cfg = loaded.resolve("small", {"training": {"epochs": 2, "learning_rate": 1e-3}},
                      {"training": {"learning_rate": "2e-3"}, "data": "csv:x.csv"})
    assert (cfg.training.epochs, cfg.training.learning_rate, cfg.data.train) == (2, 2e-3, "csv:x.csv")
    assert loaded.resolve("other").model_params.embed_dim == 32


@pytest.mark.parametrize("text, fragments", [
    ("experiments:\n  a: {model: transformer, trainig: {epochs: 2}}\n",
     ["experiments.a", "trainig: unknown key", "allowed keys"]),
    ("experiments:\n  a: {model: transformer, training: {epochs: two}}\n",
     ["experiments.a", "training.epochs", "'two'", "integer"]),
    ("experiments:\n  a: {model: transformer, training: {optimizer: sgd}}\n",
     ["training.optimizer", "'sgd'", "adam, adamw"]),
    ("experiments:\n  a: {model: transformer, training: {epochs: -1}}\n", ["training.epochs", "-1", ">= 1"]),
    ("experiments:\n  a: {model: transformr}\n", ["experiments.a", "unknown model 'transformr'", "transformer"]),
    ("experiments:\n  a: {model: transformer, model_params: {heads: 2}}\n", ["model_params.heads: unknown key"]),
    ("experiments:\n  a: [1, 2\n", ["invalid YAML", "line"]),
    ("defaults: {training: {seed: x}}\nexperiments:\n  a: {model: transformer}\n", ["defaults", "training.seed"]),
    ("experimens:\n  a: {}\n", ["experimens: unknown key"]),
    ("experiments: [1, 2]\n", ["experiments: expected a mapping of experiment names"]),
])
def test_bad_files_fail_at_load_with_the_field_path(tmp_path, text, fragments):
    with pytest.raises(ConfigError) as err:
        load_experiments(write(tmp_path, text))
    for fragment in fragments:
        assert fragment in str(err.value)


def test_unknown_experiment_lists_the_known_ones(tmp_path):
    loaded = load_experiments(write(tmp_path, BASE))
    with pytest.raises(ConfigError, match="unknown experiment 'nope'.*available: small, other"):
        loaded.get("nope")


def test_shipped_recipes_work_anywhere_and_a_project_file_adds_and_overrides(tmp_path, monkeypatch):
    """The recipes ship inside the package: from an empty folder they are all there; a project's
    experiments.yaml adds experiments, replaces a shipped one of the same name, and its defaults apply to
    every experiment; each experiment says where it comes from."""
    from textclf.experiments import SHIPPED

    monkeypatch.chdir(tmp_path)
    alone = load_experiments()
    assert {"transformer", "bert-finetune-adamw", "ngram-linear"} <= set(alone.experiments)
    assert {e.source for e in alone.experiments.values()} == {SHIPPED}
    assert alone.expand(["baselines"]) == ["ngram-linear", "ngram-mlp", "transformer-tuned"]
    write(tmp_path, "defaults: {training: {seed: 7}}\nexperiments:\n"
                    "  transformer: {model: transformer, training: {epochs: 3}}\n  mine: {model: ngram-mlp}\n"
                    "groups:\n  pair: [mine, ngram-linear]\n")
    both = load_experiments()
    assert both.get("transformer").config.training.epochs == 3  # replaced (the shipped one has 1)
    assert both.get("transformer").source == Path("experiments.yaml") == both.get("mine").source
    assert both.get("ngram-linear").source == SHIPPED and both.get("ngram-linear").config.training.seed == 7
    assert both.expand(["pair"]) == ["mine", "ngram-linear"] and "baselines" in both.groups
    with pytest.raises(ConfigError, match="experiments file not found"):
        load_experiments(tmp_path / "named-but-missing.yaml")


def test_a_project_file_is_never_broken_by_shipped_recipes_it_does_not_use(tmp_path, monkeypatch):
    """Project defaults a shipped recipe cannot take make that recipe unusable (said when it is asked for),
    not the file; a project experiment named like a shipped group hides the group; a failed add leaves no
    file behind."""
    from textclf.experiments import add_experiment

    monkeypatch.chdir(tmp_path)
    write(tmp_path, "defaults: {training: {optimizer: adamw, weight_decay: 0.01}}\n"
                    "experiments: {mine: {model: transformer}, baselines: {model: ngram-linear}}\n")
    loaded = load_experiments()
    assert loaded.get("mine").config.training.weight_decay == 0.01
    assert loaded.get("baselines").config.model == "ngram-linear" and "baselines" not in loaded.groups
    with pytest.raises(ConfigError, match="shipped experiment transformer with the defaults of experiments.yaml"):
        loaded.get("transformer")
    with pytest.raises(ConfigError, match="unknown model 'no-such-model'"):
        add_experiment(tmp_path / "new.yaml", "x", {"model": "no-such-model"})
    assert not (tmp_path / "new.yaml").exists()
    add_experiment(tmp_path / "new.yaml", "x", {"model": "ngram-linear"})
    assert load_experiments(tmp_path / "new.yaml").get("x").source == tmp_path / "new.yaml"
