"""Every model family passes the family harness (tests/models/harness.py), and a new family is one folder
plus one registration line: the toy family in tests/models/toy_bow/."""

from __future__ import annotations

import importlib

import pytest

from harness import run_family_test


@pytest.fixture
def toy_family():
    from textclf.registry import register_family, unregister_family

    family = register_family(importlib.import_module("toy_bow").FAMILY)  # the one registration line
    yield family
    unregister_family(family.name)


def test_a_new_family_is_a_folder_and_one_registration_line(toy_family, tmp_path):
    """The toy family trains, evaluates, predicts with its twin and exports through the CLI."""
    run_family_test(toy_family, "toy-bow", {"embed_dim": 8}, tmp_path, epochs=3)


@pytest.mark.parametrize("preset,tiny", [
    ("transformer", {"embed_dim": 8, "num_heads": 1, "ff_dim": 8, "max_length": 16, "vocab_size": 200}),
    ("ngram-mlp", {"hidden_dim": 8}),
    ("ngram-linear", {}),
])
def test_shipped_families_pass_the_harness(preset, tiny, tmp_path):
    from textclf.models.catalog import MODELS
    from textclf.registry import family

    run_family_test(family(MODELS.get(preset).family), preset, tiny, tmp_path, epochs=1)


def test_registering_a_family_twice_or_reusing_a_twin_kind_is_refused(toy_family):
    import dataclasses

    from textclf.registry import register_family

    with pytest.raises(ValueError, match="already registered"):
        register_family(toy_family)
    with pytest.raises(ValueError, match="twin kinds"):
        register_family(dataclasses.replace(toy_family, name="other", presets=()))
    from textclf.registry import FAMILIES, MODELS, Preset

    clash = dataclasses.replace(toy_family, name="other", runners={}, presets=(
        Preset("toy-new", "a new name"), Preset("transformer", "a shipped name")))
    with pytest.raises(ValueError, match="'transformer' is already registered"):
        register_family(clash)
    assert "toy-new" not in MODELS.builtin_names() and "other" not in FAMILIES  # nothing half-registered
