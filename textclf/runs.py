"""The run directory: its files, its lifecycle (`start` -> `Run.finish`), listing, `latest`.

A run directory holds config.json, labels.json, model.keras, history.json, metrics.json,
predictions.npz, thresholds.json (multi-label runs), model-lite.npz (the model's twin for a cold `predict`),
logs/ (TensorBoard), checkpoints/ (while unfinished) and run.json; every name is defined here
and nowhere else. run.json's `status` is "running" while training, then "failed", "interrupted"
(Ctrl-C, SIGTERM: resumable) or "complete"; it becomes "complete" only after everything else is
written, and only complete runs are used by evaluate/predict or pointed to by `latest`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

from textclf.errors import Interrupted, RunError, Terminated, TextclfError, write_failure

RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
TWIN_FILE = "model-lite.npz"  # the model's twin (textclf.twins) for a cold `predict`; its first name, kept
NATIVE = "native"  # TWIN_FILE's binding when its arrays are the run's only model (no MODEL_FILE)
CONFIG_FILE = "config.json"
LABELS_FILE = "labels.json"
HISTORY_FILE = "history.json"
METRICS_FILE = "metrics.json"
PREDICTIONS_FILE = "predictions.npz"  # per eval example: true and predicted class (paired tests)
THRESHOLDS_FILE = "thresholds.json"  # multi-label runs: the probability each label is predicted from
TEACHER_FILE = "teacher.npz"  # a distilled student: its teacher's probabilities of the transfer set (a cache)
PROGRESS_FILE = "progress.json"  # inside checkpoints/
CHECKPOINTS_DIR = "checkpoints"
LOGS_DIR = "logs"
LOCK_FILE = ".lock"  # locked (flock) by the process training in the run directory
CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "learning_curves.png"
RELIABILITY_PNG = "reliability.png"  # the eval probabilities' reliability diagram (textclf.calibration)
# Every file and folder a run directory may hold (tests/test_architecture.py: named nowhere else).
RUN_FILES = (RUN_FILE, CONFIG_FILE, LABELS_FILE, MODEL_FILE, TWIN_FILE, HISTORY_FILE, METRICS_FILE, PREDICTIONS_FILE,
             THRESHOLDS_FILE, CONFUSION_PNG, CURVES_PNG, CHECKPOINTS_DIR, PROGRESS_FILE, LOGS_DIR, LOCK_FILE,
             TEACHER_FILE, RELIABILITY_PNG)
LATEST = "latest"
DEFAULT_ROOT = "runs"


def timestamp() -> str:
    """Local time with its UTC offset, as every run file records times."""
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def umask() -> int:
    """The process umask now (Linux: read, not set; elsewhere set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_json(path: Path, obj: Any) -> None:
    """Write JSON atomically (temp file + rename), so a reader never sees half a file."""
    write_bytes(path, (json.dumps(obj, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_output(path: str | Path, data: bytes) -> Path:
    """A file the user asked for (a plot, a curve, a report page), atomically; any failure to write it
    (a full disk, a missing folder, no permission) is one RunError and leaves no partial file. A path that is
    a FIFO or a device (/dev/stdout) is written into as it is."""
    import stat

    path = Path(path)
    try:  # a link (/dev/stdout -> /proc/self/fd/1, even to a file) or a FIFO or device: written into
        mode = path.lstat().st_mode
        special = not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)
    except OSError:  # not there (yet): a new file
        special = False
    try:
        if special:  # a FIFO, /dev/stdout, /dev/null: written into, never replaced by a file (no rename there)
            with open(path, "wb") as fh:
                fh.write(data)
        else:
            write_bytes(path, data)
    except OSError as err:
        raise RunError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def model_signature(model_file: Path) -> str:
    """What identifies a saved model.keras: the SHA-256 of its bytes (≈ 5 ms for a 10 MB model), so a
    twin is never bound to a model damaged since (the zip's own CRCs are only checked when a member is
    read). OSError if unreadable."""
    import hashlib

    digest = hashlib.sha256()
    with open(model_file, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def zip_signature(model_file: Path) -> str:
    """The signature of runs saved before model_signature hashed the bytes: the zip directory's members,
    sizes and CRC-32s. zipfile.BadZipFile/OSError if unreadable."""
    import zipfile

    with zipfile.ZipFile(model_file) as archive:
        return ";".join(f"{i.filename}:{i.file_size}:{i.CRC:08x}"
                        for i in sorted(archive.infolist(), key=lambda i: i.filename))


def write_npz(path: Path, arrays: dict, compressed: bool = True) -> None:
    """numpy arrays into one .npz, atomically (`compressed=False`: read back at memory speed)."""
    import io

    import numpy as np

    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **{k: np.asarray(v) for k, v in arrays.items()})
    write_bytes(path, buffer.getvalue())


def read_npz(path: Path, keys: tuple[str, ...] | None = None) -> dict:
    """The arrays of an .npz run file (`keys`, or all); a damaged or truncated file is one RunError."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as saved:
            if not hasattr(saved, "files"):  # a bare .npy array, not an archive of named arrays
                raise ValueError("not an .npz archive")
            missing = [key for key in keys or () if key not in saved.files]
            if missing:
                raise RunError(f"{path} is unreadable: it has no {missing[0]!r} array; it is damaged or "
                               "was written by another program")
            return {key: saved[key] for key in (keys if keys is not None else saved.files)}
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except RunError:
        raise
    except Exception as err:  # BadZipFile, zlib.error, EOFError, ValueError (not numpy's format), OSError
        raise RunError(f"{path} is unreadable ({type(err).__name__}); it is damaged or truncated") from None


def read_json(path: Path) -> Any:
    from textclf.textfiles import loads

    try:
        return loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RunError(f"{path} is missing") from None
    except (OSError, ValueError) as err:  # UnicodeDecodeError, JSONDecodeError, too deep, a 5,000-digit number
        raise RunError(f"{path} is unreadable ({err})") from None


def read_object(path: Path) -> dict:
    """A run file that must hold a JSON object (run.json, config.json, metrics.json)."""
    value = read_json(path)
    if not isinstance(value, dict):
        from textclf.textfiles import json_kind

        raise RunError(f"{path} is unreadable (a JSON object was expected, got {json_kind(value)})")
    return value


_TEXT_FIELDS = ("name", "status", "model", "family", "experiment", "data", "eval_data", "started", "finished",
                "updated", "error", "host")
_NUMBER_FIELDS = ("pid", "duration_seconds", "accuracy", "macro_f1", "epochs", "resumed")
_FRACTION_FIELDS = ("accuracy", "macro_f1")


def clean_info(info: dict) -> dict:
    """run.json as readers may trust it: text fields are strings, numbers are numbers (else dropped),
    `group` is {"id": str, ...} or absent. A damaged field never breaks a listing of many runs."""
    out = dict(info)
    for key in _TEXT_FIELDS:
        if key in out and out[key] is not None and not isinstance(out[key], str):
            out[key] = str(out[key])
    for key in _NUMBER_FIELDS:
        if key in out and (isinstance(out[key], bool) or not isinstance(out[key], (int, float))
                           or (isinstance(out[key], float) and not math.isfinite(out[key]))
                           or abs(out[key]) > 2**63):  # a 400-digit number: no pid, no count
            del out[key]
    for key in _FRACTION_FIELDS:  # an accuracy of 2.5 (a hand edit) is not shown as 250%
        if key in out and not 0 <= out[key] <= 1:
            del out[key]
    if "group" in out and not (isinstance(out["group"], dict) and isinstance(out["group"].get("id"), str)
                               and isinstance(out["group"].get("index", 0), int)):
        del out["group"]
    return out


def check_run_dir(path: str | Path) -> None:
    """A run directory asked for (--run-dir) is new or empty: checked before the work that fills it."""
    path = Path(path)
    try:
        if path.exists() and not path.is_dir():
            raise RunError(f"the run directory {path} is a file; give a new or empty directory")
        if path.exists() and any(p.name != LOCK_FILE for p in path.iterdir()):
            raise RunError(f"run directory already exists and is not empty: {path}")
    except OSError as err:
        raise RunError(f"cannot create a run directory at {path}: {err.strerror or err}") from None


def new_run_dir(root: str | Path, model: str, explicit: str | Path | None = None) -> Path:
    """Create the run directory: the one asked for, or root/<timestamp>-<model>[-N]."""
    try:
        if explicit is not None:
            path = Path(explicit)
            check_run_dir(path)
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
    try:
        current = read_object(path) if path.exists() else {}
    except RunError:  # a damaged run.json is replaced by this state, not fatal to recording it
        current = {}
    if status in ("running", "complete"):  # an error of an earlier attempt no longer describes the run
        current.pop("error", None)
    current.update(info, status=status, updated=timestamp())
    write_json(path, current)
    return current


def process_info() -> dict:
    """Who is writing this run (to tell a live run from an interrupted one)."""
    import socket

    return {"pid": os.getpid(), "host": socket.gethostname()}


STATUSES = ("complete", "failed", "running", "interrupted")


def status(info: dict, path: str | Path | None = None) -> str:
    """complete | failed | running | interrupted (stopped by Ctrl-C or SIGTERM, or said to be running but
    its process is gone: it can be resumed), as run.json says (list_runs also tells a complete run whose files
    are gone: damaged). A running run's process is looked for by its pid on its host and, where `path` is given,
    by the lock its trainer holds: a pid reused by another process (a restarted machine or container numbers
    its processes from 1 again) is not taken for the trainer when no one holds the run's lock."""
    import socket

    state = info.get("status", "unknown")
    state = state if isinstance(state, str) else "unknown"
    if state == "failed" and info.get("error") == "interrupted":  # how earlier versions recorded a Ctrl-C
        return "interrupted"
    if state == "running" and info.get("host") == socket.gethostname():
        pid = info.get("pid")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            return "interrupted"  # no process could be writing it
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return "interrupted"
        except (PermissionError, OverflowError):
            pass
        writer = _lock_holder(Path(path)) if path is not None else None
        if writer == "none" or (writer == "this process" and pid != os.getpid()):
            return "interrupted"  # (this process: resuming it, under the lock, with the old pid still recorded)
    return state


def _lock_holder(path: Path) -> str | None:
    """Who holds the run directory's lock: "this process", "another", "none", or None where it cannot be told
    (no lock file: a run of an earlier textclf; no flock on this filesystem). Never creates the lock file."""
    lock = path / LOCK_FILE
    if not lock.is_file():  # none, or a folder or FIFO where the file belongs (opening a FIFO would wait)
        return None
    try:
        import fcntl

        fh = open(lock, "rb")
    except (ImportError, OSError):
        return None
    with fh:
        if any(os.path.sameopenfile(fh.fileno(), held.fileno()) for held in _HELD if not held.closed):
            return "this process"
        try:  # a shared lock, released as the file closes: it conflicts only with a trainer's exclusive one
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return "another"
        except OSError:
            return None
        return "none"


def check_resumable(run_dir: str | Path | None, config: Any = None) -> Path:
    """The run directory, if it is an unfinished run that may be continued (with `config`)."""
    if run_dir is None:
        raise RunError("--resume needs a run directory")
    path = Path(run_dir)
    if not path.is_dir():
        raise RunError(f"run directory not found: {path}")
    if not (path / RUN_FILE).exists() or not (path / CONFIG_FILE).exists():
        raise RunError(f"{path} is not a textclf run directory (no {RUN_FILE} or {CONFIG_FILE})")
    info = clean_info(read_object(path / RUN_FILE))
    state = status(info, path)
    if state == "complete":
        raise RunError(f"run {path} is already complete; nothing to resume")
    if state == "running":
        raise RunError(f"run {path} is still running (pid {info.get('pid')}); stop it before resuming")
    if config is not None and not _same_but_epochs(_with_defaults(read_object(path / CONFIG_FILE)), config.to_dict()):
        raise RunError(f"cannot resume {path}: its saved config differs from this one")
    return path


def _with_defaults(saved: dict) -> dict:
    """A saved config with the fields a later textclf added filled in with their defaults (as resuming reads
    it), so a run interrupted before an upgrade still compares equal to its own config."""
    from textclf.config import resolve_config
    from textclf.errors import TextclfError

    try:
        return resolve_config(saved).to_dict()
    except TextclfError:  # not a config this textclf reads: compared as saved (and found to differ)
        return saved


def _same_but_epochs(saved: dict, config: dict) -> bool:
    """Whether two configs differ at most in training.epochs (a resume may extend the run)."""
    def without(c: dict) -> dict:
        return {**c, "training": {k: v for k, v in (c.get("training") or {}).items() if k != "epochs"}}
    return without(saved) == without(config)


def is_complete(run_dir: Path) -> bool:
    try:
        info = read_object(Path(run_dir) / RUN_FILE)
    except RunError:
        return False
    return info.get("status") == "complete" and not missing_files(run_dir)


def has_model(run_dir: Path) -> bool:
    """The run holds its model: model.keras, or (a model trained without TensorFlow) only the arrays file."""
    return (Path(run_dir) / MODEL_FILE).exists() or (Path(run_dir) / TWIN_FILE).exists()


def missing_files(run_dir: Path) -> list[str]:
    """The files a complete run answers with that are not there (its model, labels, config and metrics): a run
    whose files were removed by hand is damaged, not complete."""
    run_dir = Path(run_dir)
    missing = [] if has_model(run_dir) else [f"the model ({MODEL_FILE} or {TWIN_FILE})"]
    return missing + [name for name in (LABELS_FILE, CONFIG_FILE, METRICS_FILE) if not (run_dir / name).is_file()]


def update_latest(run_dir: Path) -> None:
    """Point <root>/latest at run_dir (atomic symlink swap, relative target); a `latest` that is not a symlink
    (a user's own file or folder beside a --run-dir) is left alone."""
    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}.{os.getpid()}"
    if link.exists() and not link.is_symlink():
        return
    try:
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(run_dir.name)
        os.replace(tmp, link)
    except OSError:  # e.g. no symlinks on this filesystem: `latest` is found by scanning
        tmp.unlink(missing_ok=True)


def complete_runs(root: str | Path = DEFAULT_ROOT) -> list[Path]:
    """Complete runs under root, oldest first (by completion time)."""
    done = [i for i in list_runs(root) if i["status"] == "complete"]
    return [Path(i["path"]) for i in sorted(done, key=lambda i: (str(i.get("finished", "")), i["name"]))]


def list_runs(root: str | Path = DEFAULT_ROOT) -> list[dict]:
    """Every run under root (any status), oldest first; each run.json plus `path` and `status`.

    Runs that vanish or turn unreadable while being listed are skipped, not fatal.
    """
    from textclf.textfiles import loads

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
            info = loads((path / RUN_FILE).read_text(encoding="utf-8"))
        except IsADirectoryError:  # a run.json that is a folder: a damaged run, not "no run"
            info = None
        except OSError:  # not a run, or one this user may not read (another's, in a shared folder): skipped
            continue
        except ValueError:
            info = None
        if not isinstance(info, dict):  # a run whose run.json is damaged: listed as such, not left out
            found.append({"name": path.name, "path": str(path), "status": "damaged",
                          "error": f"{RUN_FILE} unreadable"})
            continue
        info = clean_info(info)
        info = {**info, "path": str(path), "status": status(info, path), "name": path.name}  # a copied run: its name
        missing = missing_files(path) if info["status"] == "complete" else []
        if missing:
            info = {**info, "status": "damaged", "error": f"missing {', '.join(missing)}"}
        elif info["status"] not in STATUSES:  # a hand edit ("bogus", 3): shown as damaged, not as a status
            said = f"says status {info['status']!r}" if info["status"] != "unknown" else "has no status"
            info = {**info, "status": "damaged", "error": f"{RUN_FILE} {said}"}
        found.append(info)
    return sorted(found, key=lambda i: (str(i.get("started", "")), i["name"]))


def new_group_id(name: str, kind: str, size: int) -> str:
    """A group's id: <time>-<name>-<kind><size>, e.g. 20261202-101500-transformer-seeds5."""
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}-{kind}{size}"


def groups(root: str | Path = DEFAULT_ROOT) -> dict[str, list[dict]]:
    """Group id -> its runs' run.json (as list_runs gives them), in group order."""
    found: dict[str, list[dict]] = {}
    for info in list_runs(root):  # clean_info: a group is {"id": str, "index": int, ...} or absent
        if "group" in info:
            found.setdefault(info["group"]["id"], []).append(info)
    for members in found.values():
        members.sort(key=lambda i: i["group"].get("index", 0))
    return found


def _stopped(info: dict) -> bool:
    """Interrupted: its process is gone, or it was stopped by Ctrl-C / SIGTERM (resumable)."""
    return info["status"] == "interrupted"


def _has_config(info: dict, config: dict) -> bool:
    """Whether the run was started with `config`: as requested (run.json's requested_config, when the
    saved config holds values derived from the data, e.g. a transformer's max_length), or as saved."""
    if info.get("requested_config") == config:
        return True
    try:
        return read_object(Path(info["path"]) / CONFIG_FILE) == config
    except TextclfError:
        return False


def unfinished_group(root: str | Path, experiment: str, configs: list[dict]) -> tuple[str, dict] | None:
    """The newest group of `experiment` whose runs have these configs (by index) and that is not all
    complete: (its id, {index: (path, "complete" | "interrupted")}). Failed runs start again."""
    for group_id, members in reversed(list(groups(root).items())):
        first = members[0]
        if first.get("experiment") != experiment or first["group"].get("size") != len(configs):
            continue
        state: dict[int, tuple[Path, str]] = {}
        for info in members:
            index = info["group"].get("index", -1)
            done = info["status"] == "complete"
            if 0 <= index < len(configs) and (done or _stopped(info)) and _has_config(info, configs[index]):
                state[index] = (Path(info["path"]), "complete" if done else "interrupted")
        if state and any(s != "complete" for _, s in state.values()) or 0 < len(state) < len(configs):
            return group_id, state
    return None


def resolve_group(ref: str, root: str | Path = DEFAULT_ROOT) -> list[Path] | None:
    """The complete runs of group `ref` (its id, or the end of one group's id) under root (None when no group
    has that id)."""
    found = groups(root)
    members = found.get(str(ref))
    if members is None:
        ends = [g for g in found if g.endswith("-" + str(ref))]
        if len(ends) > 1:
            raise RunError(f"{ref} matches {len(ends)} groups ({', '.join(ends)}); give more of the id")
        if not ends:
            return None
        ref, members = ends[0], found[ends[0]]
    done = [Path(i["path"]) for i in members if i["status"] == "complete"]
    if not done:
        raise RunError(f"group {ref} has no complete run yet")
    return done


def resolve_items(refs: list[str], root: str | Path = DEFAULT_ROOT) -> list[Path | list[Path]]:
    """Each ref a group id (its complete runs) or a run (see resolve_run)."""
    return [resolve_group(ref, root) or resolve_run(ref, root, complete=False) for ref in refs]


def by_group(paths: list[Path]) -> list[Path | list[Path]]:
    """Runs with their group's other runs gathered into one item (in order of first appearance)."""
    items: list[Path | list[Path]] = []
    where: dict[str, list[Path]] = {}
    for path in paths:
        try:
            group = Run(path).group
        except TextclfError:
            group = None
        if group is None:
            items.append(path)
        elif group["id"] in where:
            where[group["id"]].append(path)
        else:
            where[group["id"]] = [path]
            items.append(where[group["id"]])
    return [item[0] if isinstance(item, list) and len(item) == 1 else item for item in items]


def resolve_run(run: str | Path | None, root: str | Path = DEFAULT_ROOT, *, complete: bool = True,
                resumable: bool = False) -> Path:
    """The run a command reads, from one reference, in the same forms for every command:

    None: the newest complete run; a run directory; a run's name under root; the end of one run's name
    (`101500-transformer`); a model or experiment name (its newest complete run). A reference that
    matches several runs is refused with the candidates; a group id is refused with what to do.
    `complete`: the run must be complete with its model (evaluate, predict, export, serve); else any
    run directory (report, compare). `resumable` (train --resume): a model or experiment name means its
    newest interrupted run.
    """
    if run is None:
        link = Path(root) / LATEST
        if link.exists() and is_complete(link):
            return link.resolve()
        done = complete_runs(root)
        if not done:
            raise RunError(f"no complete run under {root}/; train one first (textclf train) or pass a run directory")
        return done[-1]
    path = Path(run)
    if not path.is_dir() and (Path(root) / str(run)).is_dir():  # a run name
        path = Path(root) / str(run)
    if not path.is_dir():
        path = _match_run(str(run), root, complete, resumable)
    if not complete:
        return path
    if not (path / RUN_FILE).exists():
        raise RunError(f"{path} is not a textclf run directory (no {RUN_FILE})")
    info = clean_info(read_object(path / RUN_FILE))
    state = status(info, path)
    if state != "complete":
        hint = f"; continue it with textclf train --resume {path}" if state == "interrupted" else ""
        raise RunError(f"run {path} is not complete (status: {state}); it has no usable model{hint}")
    missing = missing_files(path)
    if missing:
        raise RunError(f"run {path} is damaged: {', '.join(missing)} missing; train it again")
    return path.resolve()


def is_run_reference(text: str, root: str | Path = DEFAULT_ROOT) -> bool:
    """Whether `text` names a run in any of resolve_run's forms: a run directory, a run's name under root,
    a model or experiment name of a run, a group id (or its end), or the end of a run's name — one with a
    `-` in it (`101500-transformer`), or that only one run has: a word like `linear` that the names of
    several runs end with is a text."""
    if not text or len(text) > 4096 or any(c.isspace() for c in text):
        return False
    try:
        if any((p / RUN_FILE).is_file() for p in (Path(text), Path(root) / text)):
            return True
    except (OSError, ValueError):
        return False
    try:
        found = list_runs(root)
    except RunError:
        return False
    if any(text in (i.get("model"), i.get("experiment")) for i in found):
        return True
    if any(g == text or g.endswith("-" + text) for g in {i["group"]["id"] for i in found if "group" in i}):
        return True
    ends = [i for i in found if i["name"].endswith("-" + text)]
    return bool(ends) and ("-" in text or len(ends) == 1)


def _match_run(ref: str, root: str | Path, complete: bool, resumable: bool = False) -> Path:
    """The run whose name ends with `ref` (after a `-`), else the newest complete run of model or experiment
    `ref` (with `complete`, complete runs are looked for first); RunError naming the candidates when several
    runs end so, or what `ref` is when it is a group."""
    found = list_runs(root)
    usable = lambda i: i["status"] == "complete" and has_model(Path(i["path"]))  # noqa: E731
    ends = [i for i in found if i["name"].endswith("-" + ref)]
    named = [i for i in found if ref in (i.get("model"), i.get("experiment"))]
    if resumable:
        stopped = [i for i in [*ends, *named] if _stopped(i)]
        if stopped:
            return Path(max(stopped, key=lambda i: (str(i.get("updated", "")), i["name"]))["path"])
    for candidates in ([i for i in ends if usable(i)] if complete else [], ends):
        if len(candidates) == 1 and not (complete and not usable(candidates[0]) and any(map(usable, named))):
            return Path(candidates[0]["path"])
    if named:
        done = [i for i in named if usable(i)]
        if not done:
            raise RunError(f"no complete run of {ref} under {root}/ ({len(named)} run(s) of it, none complete; "
                           "see textclf runs list)")
        return Path(max(done, key=lambda i: (str(i.get("finished", "")), i["name"]))["path"])
    if len(ends) > 1:
        names = [i["name"] for i in ends]
        listed = ", ".join(names[-5:]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        raise RunError(f"{ref} matches {len(names)} runs under {root}/: {listed}; name one of them")
    if ref in groups(root):
        raise RunError(f"{ref} is a group of runs: name one of its runs (textclf runs list --expand), "
                       "or compare the group with textclf runs compare")
    raise RunError(f"run not found: {ref} (no run directory, run name, end of a run name, or model or experiment "
                   f"of a run under {root}/; see textclf runs list)")


def interrupted_run(root: str | Path, experiment: str, config: dict) -> Path | None:
    """The newest interrupted (or Ctrl-C'd) run of `experiment` whose saved config is `config`, if any."""
    for info in reversed(list_runs(root)):
        if info.get("experiment") == experiment and _stopped(info) and _has_config(info, config):
            return Path(info["path"])
    return None


class Run:
    """A run directory: where its parts are and what it holds (each file read when asked for)."""

    def __init__(self, path: str | Path, *, scratch: bool = False) -> None:
        self.path = Path(path)
        self.scratch = scratch  # a worker's temporary copy: never `latest`
        self._clock = (0.0, time.time())  # seconds of earlier attempts, this attempt's start

    def duration_seconds(self) -> float:
        """Wall seconds of this run so far, earlier attempts (before resumes) included."""
        before, started = self._clock
        return round(before + time.time() - started, 3)

    @classmethod
    def open(cls, path: str | Path) -> "Run":
        """An existing run directory (any status)."""
        path = Path(path)
        if not (path / RUN_FILE).is_file():
            raise RunError(f"{path} is not a textclf run directory (no {RUN_FILE})")
        return cls(path)

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def logs_dir(self) -> Path:
        return self.path / LOGS_DIR

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_FILE

    @property
    def progress_path(self) -> Path:
        return self.checkpoints_dir / PROGRESS_FILE

    @property
    def epochs_done(self) -> int | None:
        """Completed epochs saved for a resume (an unfinished run's checkpoint), else None."""
        try:
            done = read_object(self.progress_path).get("epochs_done")
        except TextclfError:
            return None
        return done if isinstance(done, int) and not isinstance(done, bool) and done >= 0 else None

    @property
    def info(self) -> dict:
        return clean_info(read_object(self.path / RUN_FILE))

    @property
    def config(self) -> dict:
        return read_object(self.path / CONFIG_FILE)

    @property
    def labels(self) -> list[str]:
        labels = read_json(self.path / LABELS_FILE)
        if not isinstance(labels, list) or not labels or not all(isinstance(x, (str, int)) for x in labels):
            raise RunError(f"{self.path / LABELS_FILE} is not a list of class names")
        if len({str(x) for x in labels}) != len(labels):
            raise RunError(f"{self.path / LABELS_FILE} names a class twice; the run is damaged: train it again")
        return [str(x) for x in labels]

    @property
    def metrics(self) -> dict:
        return read_object(self.path / METRICS_FILE)

    @property
    def history(self) -> dict:
        """The per-epoch history ({} for a run without epochs, or before it finished)."""
        path = self.path / HISTORY_FILE
        return read_json(path) if path.exists() else {}

    @property
    def predictions(self) -> dict | None:
        """{"labels", "predicted"}: the eval examples' true and predicted classes (None for older runs)."""
        path = self.path / PREDICTIONS_FILE
        if not path.exists():
            return None
        out = read_npz(path, ("labels", "predicted"))
        if out["labels"].shape != out["predicted"].shape or out["labels"].ndim not in (1, 2):
            raise RunError(f"{path} is unreadable (labels and predictions of different shapes)")
        k = len(self.labels)
        for name in ("labels", "predicted"):  # class ids of labels.json's classes (multi-label: 0/1 per label)
            x = out[name]
            ok = (x.dtype.kind in "iub" and (x.size == 0 or (x.min() >= 0 and x.max() < (2 if x.ndim == 2 else k)))
                  and (x.ndim == 1 or x.shape[1] == k))
            if not ok:
                what = "true" if name == "labels" else "predicted"
                raise RunError(f"{path} is damaged (its {what} classes are not those of labels.json); train the run "
                               "again")
        try:
            examples = self.metrics.get("examples")
        except RunError:  # no readable metrics.json: nothing to compare the count with
            examples = None
        if isinstance(examples, int) and not isinstance(examples, bool) and len(out["labels"]) != examples:
            raise RunError(f"{path} is damaged ({len(out['labels']):,} eval examples, metrics.json says "
                           f"{examples:,}); train the run again")
        return out

    @property
    def multilabel(self) -> bool:
        """Whether the run predicts label sets (a multi-label run has per-label thresholds)."""
        return (self.path / THRESHOLDS_FILE).exists()

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label run's threshold per label, in labels.json's order (None: a single-label run)."""
        path = self.path / THRESHOLDS_FILE
        if not path.exists():
            return None
        given = read_object(path).get("thresholds")
        labels = self.labels
        if not isinstance(given, dict) or set(given) != set(labels) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 1 for v in given.values()):
            raise RunError(f"{path} is unreadable (expected a threshold in [0, 1] for each of {', '.join(labels)})")
        return [float(given[label]) for label in labels]

    @property
    def group(self) -> dict | None:
        """The group this run belongs to ({"id", "kind", "size", "index"}), if any."""
        return self.info.get("group")  # validated by clean_info

    def mark(self, state: str, **info: Any) -> dict:
        return mark(self.path, state, **info)

    def finish(self, model: Any, metrics: dict, history: dict, info: dict | None = None,
               predictions: dict | None = None, thresholds: dict | None = None, twin: dict | None = None) -> dict:
        """Save the model (atomically), history, predictions and metrics; mark complete; move `latest`;
        drop checkpoints.

        `model` is a Keras model (anything with `save(path)`); `info` goes into run.json;
        `predictions`: {"labels", "predicted"} integer arrays over the eval examples (multi-hot rows for
        a multi-label run); `thresholds`: a multi-label run's {"thresholds": {label: p}, ...}; `twin`: the
        arrays of the model's TensorFlow-free twin (textclf.twins), if it has one.
        """
        if model is not None:
            tmp_model = self.path / f".{MODEL_FILE}.tmp.keras"
            try:
                model.save(tmp_model)
                tmp_model.replace(self.model_path)
            except Exception as err:  # a full disk (OSError, or h5py's and TensorFlow's own errors)
                tmp_model.unlink(missing_ok=True)
                raise RunError(f"cannot write the run in {self.path}: {write_failure(err)}") from None
        write_json(self.path / HISTORY_FILE, history)
        if twin is not None:
            # Uncompressed: read by every cold `predict`. Bound to the model.keras just written
            # (textclf.twins.load ignores a twin whose signature is not the run's model's); without a
            # Keras model (`model` None) the arrays are the run's model ("native").
            bound = model_signature(self.model_path) if model is not None else NATIVE
            write_npz(self.path / TWIN_FILE, {**twin, "model": bound}, compressed=False)
        if thresholds is not None:
            write_json(self.path / THRESHOLDS_FILE, thresholds)
        if predictions is not None:
            write_npz(self.path / PREDICTIONS_FILE, predictions)
        write_json(self.path / METRICS_FILE, metrics)
        done = self.mark("complete", finished=timestamp(), duration_seconds=self.duration_seconds(), **(info or {}))
        shutil.rmtree(self.checkpoints_dir, ignore_errors=True)  # only needed to resume
        if not self.scratch:
            update_latest(self.path)
        return done


@contextlib.contextmanager
def start(root: str | Path, name: str, config: dict, labels: list[str], *, run_dir: str | Path | None = None,
          resume: bool = False, scratch: bool = False, **info: Any) -> Iterator[Run]:
    """`with start(...) as run:` a run directory marked running, with its config and labels written.

    A new directory under `root` (named after `name`, or `run_dir`); with `resume`, the
    unfinished `run_dir` itself (its config and labels kept, `started` and the resume count
    carried on); with `scratch`, a temporary directory (the other workers of a multi-worker
    run), deleted when it finishes. Any exception marks the run failed (Ctrl-C: "interrupted")
    with its duration so far, and a failed write becomes one RunError line.
    """
    if scratch:
        run, previous, lock = Run(Path(tempfile.mkdtemp(prefix="textclf-worker-")), scratch=True), {}, None
    else:
        run = Run(Path(run_dir) if resume else new_run_dir(root, name, run_dir))
        lock = lock_dir(run.path, f"run {run.path} is being trained by another process; wait for it to end or "
                                  "stop it first")
    try:
        previous = {}
        if resume:  # checked again under the lock: another resume may have started since the first check
            check_resumable(run.path)
            previous = run.info
            saved = read_object(run.path / CONFIG_FILE)
            epochs = (config.get("training") or {}).get("epochs")
            if epochs != (saved.get("training") or {}).get("epochs"):  # extended (--epochs N): not as requested
                write_json(run.path / CONFIG_FILE, {**saved, "training": {**saved["training"], "epochs": epochs}})
                info = {**info, "requested_config": None}
        run._clock = (float(previous.get("duration_seconds", 0)), time.time())
        yield from _started(run, previous, config, labels, resume, scratch, info)
    finally:
        release(lock)


@contextlib.contextmanager
def locked(path: Path, busy: str) -> Iterator[None]:
    """`with locked(folder, busy):` the folder's lock held throughout (see lock_dir)."""
    lock = lock_dir(path, busy)
    try:
        yield
    finally:
        release(lock)


def release(lock) -> None:
    """Release a lock from lock_dir (None: nothing held)."""
    if lock is not None:
        _HELD.discard(lock)
        lock.close()


_HELD: set = set()  # the directory locks this process holds (a forked child closes its copies)


def lock_dir(path: Path, busy: str):
    """An exclusive lock on `path`/LOCK_FILE, held until the returned file is closed (None where flock is
    unavailable: the caller's status checks alone); RunError(`busy`) when another process holds it."""
    try:
        import fcntl
    except ImportError:
        return None
    lock = path / LOCK_FILE
    if lock.exists() and not lock.is_file():  # a folder, or a FIFO: opening it would wait for a reader for ever
        kind = "a folder" if lock.is_dir() else "not a plain file"
        raise RunError(f"cannot use the run's lock file {lock}: it is {kind}, where a plain file belongs; remove it "
                       "if no textclf process is using the run")
    try:
        fh = open(path / LOCK_FILE, "a")
    except PermissionError:  # another user's run in a shared folder: a read-only descriptor locks too (local)
        fh = None
    except OSError as err:
        raise RunError(_lock_error(path, err)) from None
    try:
        fh = fh or open(path / LOCK_FILE)
    except OSError as err:
        raise RunError(_lock_error(path, err)) from None
    for attempt in range(6):  # a moment's grace: another command's status probe (runs list) holds it shared
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if attempt == 5:
                fh.close()
                raise RunError(busy) from None
            time.sleep(0.05)
        except OSError:  # a filesystem without flock (some NFS, CIFS, Lustre): no lock, not "busy"
            fh.close()
            return None
    _HELD.add(fh)
    return fh


def _lock_error(path: Path, err: OSError) -> str:
    """What keeps the run directory's lock from being taken: the folder, or its lock file (a folder, a dangling
    link or a file no one may read, where a plain file belongs)."""
    lock = path / LOCK_FILE
    if lock.exists() or lock.is_symlink():
        return (f"cannot use the run's lock file {lock}: {err.strerror or err} (it must be a plain file; remove it "
                "if no textclf process is using the run)")
    return f"cannot write in {path}: {err.strerror or err}"


def _close_held() -> None:
    """In a forked child: close its copies of the locks (the parent keeps them; a child that outlives a
    killed parent must not keep a run locked)."""
    for fh in list(_HELD):
        try:
            fh.close()
        except OSError:
            pass
    _HELD.clear()


os.register_at_fork(after_in_child=_close_held)


def _started(run: Run, previous: dict, config: dict, labels: list[str], resume: bool, scratch: bool, info: dict):
    try:
        run.mark("running", name=run.path.name, started=previous.get("started", timestamp()),
                 resumed=previous.get("resumed", -1) + 1 if resume else 0, **info, **process_info())
        if not resume:
            write_json(run.path / CONFIG_FILE, config)
            write_json(run.path / LABELS_FILE, list(labels))
    except OSError as err:
        raise RunError(f"cannot write the run in {run.path}: {err.strerror or err}") from None
    try:
        yield run
    except BaseException as err:
        # SystemExit: rich ends the process so when its output pipe closes (`textclf train | head`): the run
        # stopped from outside, like Ctrl-C, and can be resumed
        stopped = isinstance(err, (KeyboardInterrupt, SystemExit))
        reason = "interrupted" if stopped else (str(err).splitlines() or [type(err).__name__])[0]
        reason = reason or type(err).__name__
        try:
            run.mark("interrupted" if stopped else "failed", error=reason[:500], finished=timestamp(),
                     duration_seconds=run.duration_seconds())
        except OSError:  # e.g. the disk is full: run.json still says "running", never "complete"
            pass
        if isinstance(err, OSError):
            raise RunError(f"cannot write the run in {run.path}: {err.strerror or err}") from None
        if isinstance(err, KeyboardInterrupt) and not scratch:
            raise Interrupted(run.path, terminated=isinstance(err, Terminated)) from None
        raise
    finally:
        if scratch:
            shutil.rmtree(run.path, ignore_errors=True)
