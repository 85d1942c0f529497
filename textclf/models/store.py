"""textclf's model store: imported encoders under $TEXTCLF_HOME/models/NAME (no TF import)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from textclf.errors import DataError, ModelError
from textclf.textfiles import read_json_object

META = "textclf-model.json"
NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]*\Z")  # \Z: no trailing newline ($ allows one)


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
    """An imported model's meta.json; ModelError when it is damaged (re-import the model)."""
    try:
        meta = read_json_object(path / META, what="imported model's meta file")
    except DataError as err:
        raise ModelError(f"imported model {path.name!r} is damaged: {err}; import it again with --overwrite") from None
    for key in ("encoder", "preprocessor"):
        if not isinstance(meta.get(key), str):
            raise ModelError(f"imported model {path.name!r} is damaged: {path / META} has no {key!r}; "
                             "import it again with --overwrite")
    return meta


def list_models() -> list[dict]:
    root = models_dir()
    try:
        if not root.is_dir():
            return []
        entries = sorted(root.iterdir())
    except OSError as err:  # e.g. a store this user may not read
        raise ModelError(f"cannot read the model store {root} ({err.strerror or err}); set TEXTCLF_HOME to a "
                         "folder you can read and write") from None
    found = []
    for path in entries:
        if path.is_dir() and not path.name.startswith(".") and (path / META).is_file():
            try:
                found.append({**read_meta(path), "path": str(path)})
            except ModelError:  # a damaged import is not listed (using it by name says why)
                continue
    return found


def prepare(name: str) -> Path:
    """The models folder, checked writable before any work (and cleared of dead imports' staging
    folders); a staging folder for `name` in it, which import_hf fills and renames into place."""
    import shutil
    import tempfile


    root = models_dir()
    hint = "set TEXTCLF_HOME to a folder you can write"
    try:
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", dir=root))
    except (FileExistsError, NotADirectoryError):
        raise ModelError(f"the model store {root} is not a directory (a file is in the way); {hint}") from None
    except OSError as err:
        raise ModelError(f"the model store {root} is not writable ({err.strerror or err}); {hint}") from None
    for stale in root.iterdir():  # `.NAME.PID.xxxx` of an import whose process is gone
        parts = stale.name.split(".")
        if stale.is_dir() and stale.name.startswith(".") and len(parts) >= 4 and parts[-2].isdigit() \
                and stale != staging and not _alive(int(parts[-2])):
            shutil.rmtree(stale, ignore_errors=True)
    return staging


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
