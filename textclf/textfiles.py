"""Reading a user's text file (or stdin) with one-line errors for every way it can fail.

The one reader of user files: data files (CSV/TSV/JSONL, gzipped or not), experiments
files, `predict --file`, and JSON files that must hold an object (a checkpoint's config.json).
"""

from __future__ import annotations

import gzip
import sys
import zlib

from textclf.errors import DataError


CHUNK = 4 << 20  # bytes read at a time when lines are bounded


def read_text(path: str, *, what: str = "file", max_line_chars: int | None = None, why: str = "") -> str:
    """The file's UTF-8 text ("-" = stdin; `.gz` decompressed); DataError naming the path (and line) otherwise.
    `max_line_chars`: a line longer than this is refused as soon as it is read that far (a text file's memory
    is bounded by its lines' limit, not by one monster line: a 4 MB gzip may hold a 1 GB line); `why`: what
    the refusal adds (the limit the line's length follows from)."""
    from contextlib import nullcontext

    path = str(path)
    try:
        with nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb") as raw:
            source = gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
            text = _decode(source, path, max_line_chars, why)
    except FileNotFoundError:
        raise DataError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise DataError(f"{what} path is a directory, not a file: {path}") from None
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise DataError(f"{path}: not a valid gzip file ({err})") from None
    except OSError as err:
        if path.endswith(".gz") and not err.strerror:
            raise DataError(f"{path}: not a valid gzip file ({err})") from None
        raise DataError(f"cannot read {path}: {err.strerror or err}") from None
    return text


def _decode(source, path: str, max_line_chars: int | None, why: str = "") -> str:
    """UTF-8 text of a binary stream read in CHUNKs (a BOM dropped), its lines' lengths checked as they arrive."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    newlines, run = 0, 0  # newlines so far; characters since the last one
    while True:
        chunk = source.read(CHUNK)
        if not parts and chunk[:2] in (b"\xff\xfe", b"\xfe\xff"):
            raise DataError(f"{path} is UTF-16 text; save it as UTF-8")
        try:
            piece = decoder.decode(chunk, final=not chunk)
        except UnicodeDecodeError as err:
            line = newlines + chunk[: max(err.start, 0)].count(b"\n") + 1
            raise DataError(f"{path} line {line}: not valid UTF-8 text") from None
        if not parts and piece.startswith("\ufeff"):
            piece = piece[1:]
        if max_line_chars is not None and piece:
            lengths = [len(x) for x in piece.split("\n")]
            lengths[0] += run
            over = next((i for i, n in enumerate(lengths) if n > max_line_chars), None)
            if over is not None:
                raise DataError(f"{path} line {newlines + over + 1}: longer than {max_line_chars:,} characters"
                                + (f", {why}" if why else ""))
            run = lengths[-1]
        newlines += piece.count("\n")
        parts.append(piece)
        if not chunk:
            return "".join(parts)


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
