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


def family_of(model, family_name: str = "") -> "textclf.registry.Family | None":
    """The family of the model a run names (run.json's or config.json's `model`), else the family run.json
    records (`family_name`: a run whose imported model's store is elsewhere); None when neither is known here
    (a newer version's model)."""
    from textclf.errors import TextclfError
    from textclf.registry import family

    try:
        return MODELS.get(str(model)).family_spec()
    except TextclfError:
        pass
    try:
        return family(str(family_name)) if family_name else None
    except TextclfError:
        return None
