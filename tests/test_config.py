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
