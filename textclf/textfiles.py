"""Reading a user's text file (or stdin) with one-line errors for every way it can fail.

The one reader of user files: data files (CSV/TSV/JSONL, gzipped or not), experiments
files, `predict --file`, and JSON files that must hold an object (a checkpoint's config.json).
"""

from __future__ import annotations

import gzip
import sys
import zlib

from textclf.errors import DataError


def read_text(path: str, *, what: str = "file") -> str:
    """The file's UTF-8 text ("-" = stdin; `.gz` decompressed); DataError naming the path (and line) otherwise."""
    path = str(path)
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as fh:
                data = fh.read()
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{what} path is a directory, not a file: {path}") from None
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}") from None
    if path.endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as err:
            raise DataError(f"{path}: not a valid gzip file ({err})") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data[: err.start].count(b"\n") + 1
        raise DataError(f"{path} line {line}: not valid UTF-8 text") from None


def read_json_object(path, *, what: str = "file") -> dict:
    """The JSON object in a file; DataError naming the path when it is unreadable, not JSON, or not an object."""
    import json

    text = read_text(str(path), what=what)
    try:
        obj = json.loads(text)
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        kind = {list: "an array", str: "a string", bool: "a boolean", int: "a number", float: "a number"}
        raise DataError(f"{path} must hold a JSON object {{...}}, not {kind.get(type(obj), 'null')}")
    return obj
