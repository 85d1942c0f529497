"""The model families textclf ships, registered (light: importing this does not import TF).

Each family is a folder under textclf/models/ that declares its parameters, presets, builder,
twin and export hooks in its `__init__.py` (see textclf.registry.Family); adding one is a folder
plus one line here.
"""

from __future__ import annotations

from textclf.registry import MODELS, register_family

import textclf.models.bert
import textclf.models.ngram
import textclf.models.transformer

register_family(textclf.models.transformer.FAMILY)
register_family(textclf.models.ngram.FAMILY)
register_family(textclf.models.bert.FAMILY)

__all__ = ["MODELS", "family_of"]


def family_of(model) -> "textclf.registry.Family | None":
    """The family of the model a run names (run.json's or config.json's `model`); None for a model not known
    here (a newer version's, or an imported model whose store is elsewhere)."""
    from textclf.errors import TextclfError

    try:
        return MODELS.get(str(model)).family_spec()
    except TextclfError:
        return None
