"""textclf's model store: imported encoders under $TEXTCLF_HOME/models/NAME (no TF import)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

META = "textclf-model.json"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def home() -> Path:
    """$TEXTCLF_HOME, else the user cache dir (~/.cache/textclf on Linux)."""
    if os.environ.get("TEXTCLF_HOME"):
        # Absolute: model folders are recorded in saved runs, which load from any directory.
        return Path(os.environ["TEXTCLF_HOME"]).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_cache_dir("textclf"))


def models_dir() -> Path:
    return home() / "models"


def find(name: str) -> Path | None:
    """The store folder of an imported model, if it is complete."""
    if not NAME_RE.match(name):
        return None
    path = models_dir() / name
    return path if (path / META).is_file() else None


def read_meta(path: Path) -> dict:
    return json.loads((path / META).read_text(encoding="utf-8"))


def list_models() -> list[dict]:
    root = models_dir()
    if not root.is_dir():
        return []
    found = []
    for path in sorted(root.iterdir()):
        if path.is_dir() and not path.name.startswith(".") and (path / META).is_file():
            try:
                found.append({**read_meta(path), "path": str(path)})
            except (OSError, ValueError):
                continue
    return found
