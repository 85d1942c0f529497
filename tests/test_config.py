"""Config precedence, coercion by field type and validation messages."""

import pytest

from textclf.config import parse_sets
from textclf.config import resolve_config
from textclf.errors import ConfigError, ModelError


def test_model_defaults_then_layers_in_order():
    cfg = resolve_config({"training": {"epochs": 2}}, {"training": {"epochs": 3, "seed": 7}})
    assert cfg.training.epochs == 3 and cfg.training.seed == 7
    # the transformer's training defaults sit below every layer
    assert cfg.training.global_batch_size == resolve_config().training.global_batch_size
    assert cfg.model_params.embed_dim == resolve_config().model_params.embed_dim


def test_yaml_style_strings_are_coerced_by_type():
    cfg = resolve_config(parse_sets(["training.learning_rate=3e-5", "training.epochs=4",
                                     "model_params.dropout=0.25", "data.text_fields=title,description"]))
    assert cfg.training.learning_rate == pytest.approx(3e-5)
    assert cfg.training.epochs == 4
    assert cfg.model_params.dropout == 0.25
    assert cfg.data.text_fields == ("title", "description")


@pytest.mark.parametrize("layer, message", [
    ({"training": {"epochs": -1}}, "training.epochs: got -1, expected an integer >= 1"),
    ({"training": {"global_batch_size": 0}}, "training.global_batch_size: got 0"),
    ({"training": {"optimizer": "sgd"}}, "expected one of adam, adamw"),
    ({"training": {"learning_rate": "fast"}}, "training.learning_rate: got 'fast', expected a number"),
    ({"training": {"epochz": 1}}, "training.epochz: unknown key; allowed keys: epochs"),
    ({"model_params": {"embed_dim": 0}}, "model_params.embed_dim: got 0"),
    ({"model_params": {"heads": 2}}, "model_params.heads: unknown key"),
    ({"data": {"eval_fraction": 1.5}}, "data.eval_fraction: got 1.5"),
    ({"model": "auto", "training": "5"}, "training: expected a mapping of its fields, got '5'"),  # before auto reads it
    ({"training": [1, 2]}, "training: expected a mapping of its fields"),
    ({"distill": 3}, "distill: expected a mapping of its fields"),
    ({"selection": 5}, "selection: what --model auto records"),
    ({"selection": {"model": "transformer"}}, "selection: what --model auto records"),
    ({"model": "ngram-mlp", "selection": {"model": "ngram-linear", "reason": "x"}}, "selection: what --model auto"),
])
def test_bad_values_name_path_value_and_choices(layer, message):
    with pytest.raises(ConfigError, match=None) as info:
        resolve_config(layer)
    assert message in str(info.value)


def test_unknown_model_lists_known_names():
    with pytest.raises(ModelError, match="unknown model 'bert-huge'; did you mean .* available: auto, .*transformer"):
        resolve_config({"model": "bert-huge"})


def test_set_needs_key_value():
    with pytest.raises(ConfigError, match="--set expects KEY=VALUE"):
        parse_sets(["training.epochs"])


def test_config_roundtrips_through_its_dict():
    cfg = resolve_config({"training": {"epochs": 2}, "data": {"train": "sample"}})
    again = resolve_config(cfg.to_dict())
    assert again == cfg


@pytest.mark.parametrize("layer, fragment", [
    ({"training": {"seed": 99999999999}}, "training.seed"),
    ({"training": {"seed": 2**32 - 2, "seeds": 5}}, "training.seed"),
    ({"training": {"seeds": 10**20}}, "training.seeds"),
    ({"training": {"learning_rate": float("inf")}}, "a finite number"),
    ({"training": {"learning_rate": float("nan")}}, "training.learning_rate"),
    ({"training": {"global_batch_size": 10**12}}, "training.global_batch_size"),
    ({"data": {"folds": 10**6}}, "data.folds"),
    ({"model": "transformer", "model_params": {"max_length": 10**8}}, "lower vocab_size, max_length"),  # positions
    ({"model": "transformer", "model_params": {"num_layers": 100_000}}, "model_params.num_layers"),
    ({"model": "ngram-mlp", "model_params": {"num_layers": 100_000}}, "model_params.num_layers"),
])
def test_numbers_are_bounded_before_any_run_starts(layer, fragment):
    """Numbers TensorFlow, numpy or memory cannot take fail in one line naming the field, not after a
    group's first run (`--seed 99999999999`) or by exhausting memory (`--seeds 1e20`)."""
    with pytest.raises(ConfigError, match=fragment):
        resolve_config({"model": "ngram-linear", **layer})


def test_names_with_a_trailing_newline_are_refused():
    from textclf.experiments import NAME
    from textclf.models.store import NAME_RE

    for pattern in (NAME, NAME_RE):
        assert pattern.match("minilm") and not pattern.match("minilm\n") and not pattern.match("../x")


def test_config_values_are_named_as_their_file_spells_them():
    """null, true and false, as YAML and JSON write them, not Python's None, True and False."""
    from textclf.config import _shown
    from textclf.textfiles import json_kind

    assert [_shown(v) for v in (None, True, False, "x", 3)] == ["null", "true", "false", "'x'", "3"]
    assert [json_kind(v) for v in ([], {}, "a", 1.5, None)] == ["an array", "an object", "a string", "a number", "null"]
