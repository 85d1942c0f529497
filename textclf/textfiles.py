"""Reading a user's text file (or stdin) with one-line errors for every way it can fail.

The one reader of user files: data files (CSV/TSV/JSONL, gzipped or not), experiments
files, `predict --file`, and JSON files that must hold an object (a checkpoint's config.json).
"""

from __future__ import annotations

import codecs
import gzip
import sys
import zlib
from contextlib import contextmanager, nullcontext
from typing import Iterator

from textclf.errors import DataError


CHUNK = 4 << 20  # bytes read at a time (stdin: at most; what has arrived)


def read_text(path: str, *, what: str = "file", max_line_chars: int | None = None, why: str = "",
              rows_in_memory: bool = False) -> str:
    """The file's UTF-8 text ("-" = stdin; `.gz` decompressed); DataError naming the path (and line) otherwise.
    `max_line_chars`: a line longer than this is refused as soon as it is read that far (a text file's memory
    is bounded by its lines' limit, not by one monster line: a 4 MB gzip may hold a 1 GB line); `why`: what
    the refusal adds (the limit the line's length follows from). `rows_in_memory`: the caller will hold every
    line as a row (a data file): a file whose rows would need more memory than the machine has available is
    refused as it is read that far (a 1 MB gzip may hold 100M rows), before they exhaust it."""
    budget = memory_budget() if rows_in_memory else None
    with _reading(str(path), what) as source:
        return "".join(_pieces(source, str(path), max_line_chars, why, budget))


ROW_BYTES = 160  # what a data row costs in memory beyond its characters (its strings, list, label: measured ~170)
CHAR_BYTES = 4  # …and per character: the text, its stream and the parsed fields


def _size(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def memory_budget() -> int | None:
    """Bytes a file's rows may take: 90% of the memory available now — Linux's MemAvailable, or less when the
    process's cgroup (a container's limit) leaves less; None where neither can be read (no check)."""
    found = []
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            found += [int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:")]
    except (OSError, ValueError, IndexError):
        pass
    for limit, usage in (("memory.max", "memory.current"),  # cgroup v2, then v1
                         ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            with open(f"/sys/fs/cgroup/{limit}", encoding="ascii") as fh, \
                    open(f"/sys/fs/cgroup/{usage}", encoding="ascii") as used:
                found.append(int(fh.read().strip()) - int(used.read().strip()))
            break
        except (OSError, ValueError):  # "max": no limit
            continue
    return max(0, min(found)) * 9 // 10 if found else None


def iter_lines(path: str, *, what: str = "file", max_line_chars: int | None = None, why: str = "") -> Iterator[str]:
    """The file's lines as read (iter_line_groups, one by one)."""
    for group in iter_line_groups(path, what=what, max_line_chars=max_line_chars, why=why):
        yield from group


def iter_line_groups(path: str, *, what: str = "file", max_line_chars: int | None = None,
                     why: str = "") -> Iterator[list[str]]:
    """The file's lines as they are read, in pieces (memory bounded by a piece and a line, not by the file): each
    group the lines one read completed (a pipe's: what has arrived, so its lines are answered as they come).
    Lines end at "\n" only (not at every break str.splitlines() knows: U+2028, a form feed, a lone CR…) and
    come without it: one per line as `wc -l` counts them, and a last line without its "\n". Errors as
    read_text's."""
    path = str(path)
    with _reading(path, what) as source:
        rest: list[str] = []  # the unfinished line's pieces (a list: a long line is not copied once per piece)
        for piece in _pieces(source, path, max_line_chars, why):
            if "\n" not in piece:
                rest.append(piece)
                continue
            first, *middle, last = piece.split("\n")
            yield ["".join(rest) + first, *middle]
            rest = [last]
        last = "".join(rest)
        if last:  # a last line without its "\n"
            yield [last]


def check_readable(path: str, *, what: str = "file") -> None:
    """DataError now (one line) when the file cannot be opened: before slower work that precedes its reading."""
    import os
    import stat

    if str(path) == "-":
        return
    try:
        regular = stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        regular = True  # not there, or not statable: the open below says why, in its words
    if regular:  # a FIFO is never opened twice (its writer's lines would go to the first, closed reader)
        with _reading(str(path), what):
            pass


@contextmanager
def _reading(path: str, what: str):
    """The binary stream of a file ("-" = stdin; `.gz` decompressed), every OS or gzip failure while it is
    open and read turned into one DataError naming the path."""
    try:
        with nullcontext(sys.stdin.buffer) if path == "-" else open(path, "rb") as raw:
            yield gzip.GzipFile(fileobj=raw) if path.endswith(".gz") else raw
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


def _pieces(source, path: str, max_line_chars: int | None, why: str = "", budget: int | None = None) -> Iterator[str]:
    """UTF-8 text of a binary stream read in CHUNKs (a BOM dropped), its lines' lengths checked as they arrive,
    and the memory its rows will need against `budget` (bytes; read_text's rows_in_memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    head: bytes | None = b""  # the stream's first bytes, until two decide it is not UTF-16
    started = False  # any text given yet
    newlines, run, chars = 0, 0, 0  # newlines so far; characters since the last one; characters in all
    # stdin: what has arrived (a pipe's lines are given as they are written); a file: whole pieces (a gzip's
    # read1 gives bytes decoded ahead of a corrupt block, which failed as UTF-8 before the block as gzip)
    read = getattr(source, "read1", source.read) if path == "-" else source.read
    while True:
        chunk = read(CHUNK)
        eof = not chunk
        if head is not None:  # however short the first reads are (a pipe)
            head += chunk
            if len(head) < 2 and not eof:
                continue
            if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
                raise DataError(f"{path} is UTF-16 text; save it as UTF-8")
            chunk, head = head, None
        try:
            piece = decoder.decode(chunk, final=eof)
        except UnicodeDecodeError as err:  # err.object: the decoder's held bytes (never a newline) + this chunk
            line = newlines + err.object[: max(err.start, 0)].count(b"\n") + 1
            raise DataError(f"{path} line {line}: not valid UTF-8 text") from None
        if not started and piece:
            started, piece = True, piece.removeprefix("\ufeff")
        if max_line_chars is not None and piece:
            lengths = [len(x) for x in piece.split("\n")]
            lengths[0] += run
            over = next((i for i, n in enumerate(lengths) if n > max_line_chars), None)
            if over is not None:
                raise DataError(f"{path} line {newlines + over + 1}: longer than {max_line_chars:,} characters"
                                + (f", {why}" if why else ""))
            run = lengths[-1]
        newlines += piece.count("\n")
        chars += len(piece)
        need = CHAR_BYTES * chars + ROW_BYTES * newlines
        if budget is not None and need > budget:
            raise DataError(f"{path}: too large for this machine's memory: its first {newlines:,} lines "
                            f"({chars:,} characters) would take about {_size(need)} as rows, more than the "
                            f"{_size(budget)} available; use a part of it")
        if piece:
            yield piece
        if eof:
            return


def loads(text):
    """json.loads; JSON nested past Python's recursion limit (`[[[…]]]` 100,000 deep) is a ValueError like any
    other invalid JSON, not a RecursionError (which no reader of a user's or a run's file expects)."""
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def read_json_object(path, *, what: str = "file") -> dict:
    """The JSON object in a file; DataError naming the path when it is unreadable, not JSON, or not an object."""
    text = read_text(str(path), what=what)
    try:
        obj = loads(text)
    except ValueError as err:
        raise DataError(f"{path} is not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise DataError(f"{path} must hold a JSON object {{...}}, not {json_kind(obj)}")
    return obj


def json_kind(value) -> str:
    """What a JSON (or YAML) value is, in the words of the file it came from: "an array", "null", "true"… (not
    Python's `list`, `NoneType`, `True`)."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    kinds = {dict: "an object", list: "an array", str: "a string", int: "a number", float: "a number"}
    return next((word for kind, word in kinds.items() if isinstance(value, kind)), type(value).__name__)
