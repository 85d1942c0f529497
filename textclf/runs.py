"""The run-directory contract: atomic writes, completion marker, listing, `latest`.

A run directory holds config.json, labels.json, model.keras, history.json, metrics.json,
logs/ (TensorBoard) and run.json. run.json's `status` is "running" while training, then
"failed" or "complete"; it becomes "complete" only after everything else is written, and
only complete runs are used by evaluate/predict or pointed to by `latest`.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from textclf.errors import RunError

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
LATEST = "latest"
DEFAULT_ROOT = "runs"
_UMASK = os.umask(0)
os.umask(_UMASK)


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so a reader never sees half a file."""
    write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"{path} is unreadable ({err})") from None


def new_run_dir(root: str | Path, model: str, explicit: str | Path | None = None) -> Path:
    """Create the run directory: the one asked for, or root/<timestamp>-<model>[-N]."""
    try:
        if explicit is not None:
            path = Path(explicit)
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise RunError(f"run directory already exists and is not empty: {path}")
            path.mkdir(parents=True, exist_ok=True)
            return path
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        stem = f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', model)}"
        for n in range(1, 1000):
            path = root / (stem if n == 1 else f"{stem}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as err:
        where = explicit if explicit is not None else root
        raise RunError(f"cannot create a run directory at {where}: {err.strerror or err}") from None
    raise RunError(f"cannot create a unique run directory under {root}")


def mark(run_dir: Path, status: str, **info: Any) -> dict:
    """Update run.json with `status` and extra fields."""
    path = Path(run_dir) / RUN_FILE
    current = json.loads(path.read_text()) if path.exists() else {}
    current.update(info, status=status, updated=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    write_json(path, current)
    return current


def process_info() -> dict:
    """Who is writing this run (to tell a live run from an interrupted one)."""
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname()}


def status(info: dict) -> str:
    """complete | failed | running | interrupted (said to be running, but its process is gone)."""
    import socket

    state = info.get("status", "unknown")
    if state == "running" and info.get("host") == socket.gethostname() and info.get("pid"):
        try:
            os.kill(int(info["pid"]), 0)
        except ProcessLookupError:
            return "interrupted"
        except (PermissionError, ValueError, OverflowError):
            pass
    return state


def check_resumable(run_dir: str | Path | None, config: Any = None) -> Path:
    """The run directory, if it is an unfinished run that may be continued (with `config`)."""
    if run_dir is None:
        raise RunError("--resume needs a run directory")
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    if not (path / RUN_FILE).exists() or not (path / "config.json").exists():
        raise RunError(f"{path} is not a textclf run directory (no {RUN_FILE} or config.json)")
    info = read_json(path / RUN_FILE)
    state = status(info)
    if state == "complete":
        raise RunError(f"run {path} is already complete; nothing to resume")
    if state == "running":
        raise RunError(f"run {path} is still running (pid {info.get('pid')}); stop it before resuming")
    if config is not None and read_json(path / "config.json") != config.to_dict():
        raise RunError(f"cannot resume {path}: its saved config differs from this one")
    return path


def is_complete(run_dir: Path) -> bool:
    try:
        info = json.loads((Path(run_dir) / RUN_FILE).read_text())
    except (OSError, ValueError):
        return False
    return info.get("status") == "complete" and (Path(run_dir) / MODEL_FILE).exists()


def update_latest(run_dir: Path) -> None:
    """Point <root>/latest at run_dir (atomic symlink swap, relative target)."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, link)
    except OSError:  # e.g. no symlinks on this filesystem: `latest` is found by scanning
        tmp.unlink(missing_ok=True)


def complete_runs(root: str | Path = DEFAULT_ROOT) -> list[Path]:
    """Complete runs under root, oldest first (by completion time)."""
    done = [i for i in list_runs(root) if i["status"] == "complete" and (Path(i["path"]) / MODEL_FILE).exists()]
    return [Path(i["path"]) for i in sorted(done, key=lambda i: (str(i.get("finished", "")), i["name"]))]


def list_runs(root: str | Path = DEFAULT_ROOT) -> list[dict]:
    """Every run under root (any status), oldest first; each run.json plus `path` and `status`.

    Runs that vanish or turn unreadable while being listed are skipped, not fatal.
    """
    root = Path(root)
    try:
        entries = [p for p in root.iterdir() if p.name != LATEST and not p.is_symlink()]
    except FileNotFoundError:
        return []
    except OSError as err:
        raise RunError(f"cannot list {root}: {err.strerror or err}") from None
    found = []
    for path in entries:
        try:
            info = json.loads((path / RUN_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(info, dict):
            continue
        info = {**info, "path": str(path), "status": status(info)}
        info.setdefault("name", path.name)
        found.append(info)
    return sorted(found, key=lambda i: (str(i.get("started", "")), i["name"]))


def find_run(ref: str | Path, root: str | Path = DEFAULT_ROOT) -> Path:
    """A run given as a directory or as a name under root."""
    path = Path(ref)
    if path.is_dir():
        return path
    named = Path(root) / str(ref)
    if named.is_dir():
        return named
    raise RunError(f"run not found: {ref} (not a directory, nor a run name under {root}/)")


def resolve_run(run: str | Path | None, root: str | Path = DEFAULT_ROOT) -> Path:
    """The run to use: an explicit directory, or the newest complete run under root."""
    if run is None:
        link = Path(root) / LATEST
        if link.exists() and is_complete(link):
            return link.resolve()
        runs = complete_runs(root)
        if not runs:
            raise RunError(f"no complete run under {root}/; train one first (textclf train) or pass a run directory")
        return runs[-1]
    path = Path(run)
    if not path.is_dir() and (Path(root) / str(run)).is_dir():  # a run name
        path = Path(root) / str(run)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    if not (path / RUN_FILE).exists():
        raise RunError(f"{path} is not a textclf run directory (no {RUN_FILE})")
    info = read_json(path / RUN_FILE)
    if info.get("status") != "complete":
        raise RunError(f"run {path} is not complete (status: {info.get('status', 'unknown')}); it has no usable model")
    if not (path / MODEL_FILE).exists():
        raise RunError(f"run {path} has no {MODEL_FILE}")
    return path.resolve()


def load_model(run_dir: Path):
    """Load a run's string-in, probabilities-out Keras model (custom layers auto-registered)."""
    from textclf._tf import keras
    from textclf.registry import MODELS

    from textclf.errors import ModelError

    info = read_json(Path(run_dir) / RUN_FILE)
    try:
        MODELS.get(info.get("model", "transformer")).load_builder()  # registers its layers
    except ModelError:  # e.g. an imported model's store is not set here: the run does not need it
        for name in MODELS.builtin_names():
            MODELS.get(name).load_builder()
    try:
        return _load_keras_file(Path(run_dir) / MODEL_FILE)
    except Exception as err:
        missing = _unknown_layers(Path(run_dir) / MODEL_FILE)
        if missing:
            raise RunError(f"cannot load the model in {run_dir}: it uses layer {', '.join(missing)}, which this "
                           f"textclf version does not have (saved by another version); retrain the run") from None
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunError(f"cannot load the model in {run_dir}: {first[:200]}") from None


_KERAS_FILE_PARTS = {"metadata.json", "config.json", "model.weights.h5"}


def _load_keras_file(model_file: Path):
    """`keras.models.load_model(model_file, compile=False)`, reading the weights at disk speed.

    Keras reads the weights through h5py on the zip member, and Python 3.11's zipfile
    re-reads a member from its start on every backward seek: 3 s for MiniLM's 91 MB on
    every `predict`. The member is copied out once, sequentially, and loaded with
    `load_weights` (the same state walk as `load_model`). Files with assets take the
    plain path.
    """
    import shutil
    import zipfile

    from textclf._tf import keras

    with zipfile.ZipFile(model_file) as archive:
        if set(archive.namelist()) != _KERAS_FILE_PARTS:
            return keras.models.load_model(model_file, compile=False)
        config = json.loads(archive.read("config.json"))
        config["compile_config"] = None
        model = keras.saving.deserialize_keras_object(config)
        with tempfile.TemporaryDirectory(prefix="textclf-load-") as tmp:
            weights = Path(tmp) / "model.weights.h5"
            with archive.open("model.weights.h5") as src, open(weights, "wb") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
            model.load_weights(weights)
    return model


def _unknown_layers(model_file: Path) -> list[str]:
    """textclf layers named in a saved model's config that are not registered in this version."""
    import re
    import zipfile

    from textclf._tf import keras

    try:
        with zipfile.ZipFile(model_file) as archive:
            config = archive.read("config.json").decode("utf-8", errors="replace")
    except (OSError, KeyError, zipfile.BadZipFile):
        return []
    names = sorted(set(re.findall(r'"registered_name": "(textclf>[^"]+)"', config)))
    return [n for n in names if keras.saving.get_registered_object(n) is None]


def load_labels(run_dir: Path) -> list[str]:
    labels = read_json(Path(run_dir) / "labels.json")
    if not isinstance(labels, list) or not labels:
        raise RunError(f"{run_dir}/labels.json is not a list of class names")
    return [str(x) for x in labels]
