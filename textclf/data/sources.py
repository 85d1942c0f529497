"""Data sources: one spec syntax for --data and --eval-data, read into labelled examples.

Specs:
  sample[:train|eval]         the small headline set shipped with textclf
  tfds:NAME[:SPLIT]           a TensorFlow Datasets text dataset (default ag_news_subset)
  csv:PATH / tsv:PATH         AG News layout by default (no header; label 1-based, title,
                              description); a headered file with --text-field/--label-field
                              (or a header with a `label` column); `.gz` accepted
  jsonl:PATH                  one JSON object per line, fields as above
A bare path is read by its extension. Label names come from the data, or from a
`classes.txt` beside the file (line n names class n).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import socket
import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import urlparse

import numpy as np

from textclf.textfiles import read_text
from textclf.errors import DataError

DEFAULT_TFDS = "ag_news_subset"
# Text features per tfds dataset, joined with a space (the lesson's title + " " + description).
TFDS_TEXT_FIELDS = {"ag_news_subset": ("title", "description")}
SAMPLE_LABELS = ("World", "Sports", "Business", "Sci/Tech")
SAMPLE_EVAL_EVERY = 5  # every 5th sample headline (per class) is held out for evaluation


@dataclass(frozen=True)
class Examples:
    """Labelled texts: `labels[i]` indexes `label_names`; multi-label data: `labels` is multi-hot (n, classes)."""

    texts: np.ndarray  # object array of str
    labels: np.ndarray  # int32 (n,), or uint8 (n, classes) for multi-label data
    label_names: tuple[str, ...]
    source: str

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def multilabel(self) -> bool:
        return self.labels.ndim == 2

    @property
    def strata(self) -> np.ndarray:
        """One class per example to stratify splits by: the label, or a multi-label example's label
        that comes first in `label_names` (an example without labels: a stratum of its own)."""
        if not self.multilabel:
            return self.labels
        return np.where(self.labels.any(axis=1), self.labels.argmax(axis=1), self.labels.shape[1])

    def class_counts(self) -> np.ndarray:
        """Examples per class (a multi-label example counts for each of its labels)."""
        if self.multilabel:
            return self.labels.sum(axis=0, dtype=np.int64)
        return np.bincount(self.labels, minlength=len(self.label_names))

    def label_sets(self) -> list[list[str]]:
        """Each example's label names (one for single-label data)."""
        if not self.multilabel:
            return [[self.label_names[i]] for i in self.labels]
        return [[self.label_names[j] for j in np.flatnonzero(row)] for row in self.labels]

    def subset(self, index: np.ndarray, source: str) -> "Examples":
        return Examples(self.texts[index], self.labels[index], self.label_names, source)

    def fingerprint(self) -> str:
        """A digest of the texts and their label names, in order: equal digests, the same eval data."""
        import hashlib

        digest = hashlib.sha256()
        for text, names in zip(self.texts, self.label_sets()):
            digest.update(f"{'|'.join(names)}\x1f{text}\x1e".encode("utf-8", "surrogatepass"))
        return digest.hexdigest()[:20]


@dataclass(frozen=True)
class Spec:
    """A parsed data spec."""

    kind: str  # sample | tfds | csv | tsv | jsonl
    target: str  # path, dataset name or sample split
    split: str | None = None

    def __str__(self) -> str:
        if self.kind == "sample":
            return f"sample:{self.target}"
        if self.kind == "tfds":
            return f"tfds:{self.target}" + (f":{self.split}" if self.split else "")
        return f"{self.kind}:{self.target}"


def parse_spec(spec: str) -> Spec:
    """Parse a data spec string; raise DataError with the accepted forms when malformed."""
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    if spec == "sample" or kind == "sample":
        split = rest or "train"
        if split not in ("train", "eval", "all"):
            raise DataError(f"bad data spec {spec!r}: sample splits are train, eval and all")
        return Spec("sample", split)
    if kind == "tfds":
        name, _, split = rest.partition(":")
        if not name:
            raise DataError(f"bad data spec {spec!r}: expected tfds:NAME[:SPLIT]")
        return Spec("tfds", name, split or None)
    if kind in ("csv", "tsv", "jsonl") and sep:
        if not rest:
            raise DataError(f"bad data spec {spec!r}: expected {kind}:PATH")
        return Spec(kind, rest)
    suffixes = [s.lower() for s in Path(spec).suffixes if s.lower() != ".gz"]
    ext = suffixes[-1].lstrip(".") if suffixes else ""
    if ext in ("csv", "tsv", "jsonl"):
        return Spec(ext, spec)
    if ext == "json":
        return Spec("jsonl", spec)
    raise DataError(
        f"unknown data spec {spec!r}; use sample, tfds:NAME[:SPLIT], csv:PATH, tsv:PATH or jsonl:PATH"
    )


def load_examples(
    spec: str,
    *,
    label_names: Sequence[str] | None = None,
    text_fields: Sequence[str] = (),
    label_field: str | None = None,
    default_split: str = "train",
    tfds_data_dir: str | None = None,
    label_separator: str = "|",
    multilabel: bool | None = None,
    max_text_chars: int | None = None,
) -> Examples:
    """Read a data source into memory.

    With `label_names` (an existing run's classes) labels are mapped onto them and a label
    outside that list is an error; otherwise the classes are taken from the source.
    Multi-label data (a JSONL label list, or a CSV/TSV label field holding `label_separator`,
    e.g. `World|Sports`) is detected, unless `multilabel` says which the data must be (an
    existing run's kind): then a multi-label run reads a single label as a set of one.
    A text longer than `max_text_chars` is an error (data.max_text_chars, --max-text-chars).
    """
    parsed = parse_spec(spec)
    if parsed.kind == "sample":
        rows, classes = _sample_rows(parsed.target), SAMPLE_LABELS
    elif parsed.kind == "tfds":
        parsed = Spec("tfds", parsed.target, parsed.split or default_split)
        rows, classes = _tfds_rows(parsed, text_fields, label_field, tfds_data_dir)
    else:
        rows, named = _file_rows(parsed, text_fields, label_field, label_names, label_separator,
                                 max_text_chars=max_text_chars)
        examples = _to_examples(rows, named.names, label_names, str(parsed), multilabel, max_text_chars)
        if named.indexed and label_names and named.source == RUN_CLASSES:  # said: integers are no class names
            shown = ", ".join(f"{i} = {n}" for i, n in enumerate(named.names[:4]))
            examples = dataclasses.replace(examples, source=f"{parsed} (its integer labels read as indices of the "
                                           f"run's classes: {shown}{', …' if len(named.names) > 4 else ''})")
        return examples
    return _to_examples(rows, classes, label_names, str(parsed), multilabel, max_text_chars)


def load_texts(
    spec: str,
    *,
    text_fields: Sequence[str] = (),
    label_field: str | None = None,
    tfds_data_dir: str | None = None,
    max_text_chars: int | None = None,
) -> list[str]:
    """The texts of a data source, its labels neither needed nor read: the same layouts as `load_examples`,
    where a headered CSV/TSV may lack the label column (its other columns, or `text_fields`, are the text) and
    a JSONL line the label field; an AG-layout file's first column is skipped unread."""
    parsed = parse_spec(spec)
    if parsed.kind in ("sample", "tfds"):  # their labels come with them
        return [str(t) for t in load_examples(spec, text_fields=text_fields, label_field=label_field,
                                              tfds_data_dir=tfds_data_dir, max_text_chars=max_text_chars).texts]
    rows, _ = _file_rows(parsed, text_fields, label_field, None, labelled=False, max_text_chars=max_text_chars)
    texts = [_checked_text(where, text, max_text_chars) for where, text, _ in rows]
    if not texts:
        raise DataError(f"{parsed}: no texts")
    return texts


def _checked_text(where: str, text: str, max_text_chars: int | None) -> str:
    """The text as models read it (textrules.nul_as_space); DataError when it is empty or too long."""
    from textclf.textrules import nul_as_space

    text = nul_as_space(text)
    if not text.strip():
        raise DataError(f"{where}: empty text")
    if max_text_chars is not None and len(text) > max_text_chars:
        raise DataError(f"{where}: a text of {len(text):,} characters, longer than the limit of "
                        f"{max_text_chars:,} (--max-text-chars, data.max_text_chars, raises it; memory grows "
                        "with a text's length)")
    return text


# ----------------------------------------------------------------------------- labels


def _to_examples(
    rows: Iterator[tuple[str, str, "str | tuple[str, ...]"]],
    classes: Sequence[str] | None,
    label_names: Sequence[str] | None,
    source: str,
    multilabel: bool | None = None,
    max_text_chars: int | None = None,
) -> Examples:
    """rows yield (where, text, label name, or a tuple of names for a multi-label row); build label indices."""
    texts: list[str] = []
    names: list = []
    wheres: list[str] = []
    first_set = None  # where the first multi-label row is
    for where, text, label in rows:
        text = _checked_text(where, text, max_text_chars)
        if isinstance(label, tuple):
            if multilabel is False and len(label) != 1:
                raise DataError(f"{where}: {len(label)} labels ({', '.join(label) or 'none'}), but the run is "
                                "single-label (one label per text)")
            first_set = first_set or where
        elif not str(label).strip():
            raise DataError(f"{where}: empty label")
        texts.append(text)
        names.append(label)
        wheres.append(where)
    if not texts:
        raise DataError(f"{source}: no examples")
    stray = _stray_empty_set(names, wheres) if multilabel is None else None
    if stray:
        raise DataError(f"{stray}: no label (an empty set), where every other text has one; give it its label, or "
                        "give every text its labels as a set (multi-label data)")
    multi = bool(first_set) if multilabel is None else multilabel
    sets = [n if isinstance(n, tuple) else (n,) for n in names]
    if label_names is not None:
        vocab = tuple(label_names)
    elif classes is not None:
        vocab = tuple(classes)
    else:
        vocab = tuple(sorted({x for s in sets for x in s}, key=_label_sort_key))
    index = {name: i for i, name in enumerate(vocab)}
    for i, names_i in enumerate(sets):
        for name in names_i:
            if name not in index:
                raise DataError(
                    f"{wheres[i]}: label {name!r} is not one of the classes ({', '.join(vocab)})"
                )
    if multi:
        labels = np.zeros((len(sets), len(vocab)), dtype=np.uint8)
        for i, names_i in enumerate(sets):
            labels[i, [index[n] for n in names_i]] = 1
    else:
        labels = np.array([index[s[0]] for s in sets], dtype=np.int32)
    if label_names is None and len(vocab) < 2:
        raise DataError(f"{source}: needs at least 2 classes, found {len(vocab)} ({', '.join(vocab)})")
    return Examples(np.array(texts, dtype=object), labels, vocab, source)


def _label_sort_key(name: str) -> tuple[int, float, str]:
    try:
        return (0, float(name), name)
    except ValueError:
        return (1, 0.0, name)


# ----------------------------------------------------------------------------- sample


def _sample_rows(split: str) -> Iterator[tuple[str, str, str]]:
    text = resources.files("textclf.data").joinpath("sample.csv").read_text(encoding="utf-8")
    reader = csv.reader(io.StringIO(text))
    next(reader)  # header: label,text
    seen: dict[str, int] = {}
    for row in reader:
        label, headline = row
        k = seen.get(label, 0)
        seen[label] = k + 1
        held_out = k % SAMPLE_EVAL_EVERY == SAMPLE_EVAL_EVERY - 1
        if split == "all" or (split == "eval") == held_out:
            yield f"sample line {reader.line_num}", headline, label


# ----------------------------------------------------------------------------- files


def _open_text(path: Path, max_text_chars: int | None = None) -> io.TextIOBase:
    """The file as a text stream; with a text limit, a line that could hold no text within it (12 characters
    for each of the text's, as JSON's escapes of an emoji take, plus 16 MiB for the other fields) is refused as
    it is read."""
    limit = 12 * max_text_chars + (16 << 20) if max_text_chars else None
    why = (f"more than a text within the limit of {max_text_chars:,} characters takes (--max-text-chars, "
           "data.max_text_chars, raises it; memory grows with a text's length)") if max_text_chars else ""
    text = read_text(str(path), what="data file", max_line_chars=limit, why=why, rows_in_memory=True)
    if not text.strip():
        raise DataError(f"data file is empty: {path}")
    return io.StringIO(text, newline="")


def _classes_beside(path: Path) -> tuple[str, ...] | None:
    candidate = path.parent / "classes.txt"
    if not candidate.is_file():
        return None
    names = tuple(line.strip() for line in candidate.read_text(encoding="utf-8").splitlines())
    names = tuple(n for n in names if n)
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise DataError(f"{candidate}: class {twice!r} is named twice; each line names one class")
    return names or None


def _file_rows(
    spec: Spec, text_fields: Sequence[str], label_field: str | None, run_labels: Sequence[str] | None,
    separator: str = "|", labelled: bool = True, max_text_chars: int | None = None,
) -> tuple[Iterator[tuple[str, str, str]], "ClassList"]:
    """(rows of (where, text, label), the class list: its names when known, and where they come from);
    `labelled=False`: the label is None and need not be there."""
    path = Path(os.path.expanduser(spec.target))
    stream = _open_text(path, max_text_chars)
    # Without a classes.txt beside the file, an existing run's classes name the indices.
    beside = _classes_beside(path)
    classes = beside or (tuple(run_labels) if run_labels else None)
    named = ClassList(classes, str(path.parent / "classes.txt") if beside else RUN_CLASSES)
    if spec.kind == "jsonl":
        return _jsonl_rows(path, stream, text_fields, label_field or "label", named, separator, labelled), named
    delimiter = "\t" if spec.kind == "tsv" else ","
    quoting = csv.QUOTE_NONE if spec.kind == "tsv" else csv.QUOTE_MINIMAL
    reader = csv.reader(stream, delimiter=delimiter, quoting=quoting, strict=True)
    csv.field_size_limit(CSV_FIELD_LIMIT)
    rows = _guard_csv(reader, path)
    first = next(rows, None)
    if first is None:
        raise DataError(f"data file is empty: {path}")
    first_labels = _split_labels(first[0], separator) or [first[0]]
    headered = bool(text_fields or label_field) or any(_number(x) is None for x in first_labels)
    if not headered:
        return _ag_rows(path, reader, first, rows, named, separator, labelled), named
    return _header_rows(path, reader, first, rows, text_fields, label_field, named, separator, labelled), named


def _split_labels(raw: str, separator: str) -> list[str] | None:
    """A label field holding several labels (`World|Sports`), split and stripped; None for one label."""
    if not separator or separator not in raw:
        return None
    return [part.strip() for part in raw.split(separator) if part.strip()]


CSV_FIELD_LIMIT = 1 << 30  # Python's csv default is 128 KiB, less than one long article


def _guard_csv(reader: "csv._reader", path: Path) -> Iterator[list[str]]:
    try:
        for row in reader:
            if row:  # blank lines carry no example
                yield row
    except csv.Error as err:
        if "field larger than field limit" in str(err):
            raise DataError(f"{path} line {reader.line_num}: a field is longer than "
                            f"{CSV_FIELD_LIMIT // 2**20} MiB; split the text or shorten it") from None
        raise DataError(f"{path} line {reader.line_num}: malformed CSV ({err})") from None


def _is_int(value: str) -> bool:
    try:
        int(value.strip())
        return True
    except ValueError:
        return False


def _number(value: str) -> float | None:
    """The field as a number (`3`, `3.0`, `3e0`), else None."""
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if np.isfinite(number) else None


def _ag_rows(path, reader, first, rows, classes, separator="|", labelled=True) -> Iterator[tuple[str, str, str]]:
    for row in _chain(first, rows):
        where = f"{path} line {reader.line_num}"
        if len(row) < 2:
            raise DataError(f"{where}: expected label,title[,description,...], got {len(row)} field")
        if not labelled:
            yield where, _join_text(f.strip() for f in row[1:]), None
            continue
        several = _split_labels(row[0], separator)
        found = tuple(_ag_label(raw.strip(), classes, where) for raw in (several or [row[0]]))
        yield where, _join_text(f.strip() for f in row[1:]), found if several is not None else found[0]


def _ag_label(raw: str, classes, where: str) -> str:
    value = _number(raw)
    if value is None or not float(value).is_integer():
        raise DataError(f"{where}: label {raw!r} is not an integer class index (1-based)")
    number = int(value)  # `3.0` (a spreadsheet's export) is class 3
    names = classes.names
    if number < 1 or (names is not None and number > len(names)):
        allowed = f"1..{len(names)} in {classes.source}" if names else ">= 1"
        raise DataError(f"{where}: label {number} is outside the class list ({allowed})")
    return names[number - 1] if names else str(number)


def _header_rows(path, reader, header, rows, text_fields, label_field, classes, separator="|", labelled=True):
    header = [h.strip() for h in header]
    label_field = label_field or "label"
    column = {}  # name -> index: a dict, as a header may have 100k columns
    for i, name in enumerate(header):  # a name read twice is ambiguous (empty trailing columns are not read)
        if name in column and (name in text_fields or (labelled and name == label_field)):
            raise DataError(f"{path} line 1: two columns named {_shown(name)!r} (columns {column[name] + 1} and "
                            f"{i + 1}); give each column its own name")
        column.setdefault(name, i)
    if labelled and label_field not in column:
        raise DataError(_header_hint(path, header, reader.dialect.delimiter, _peek(rows)) or (
            f"{path} line 1: no {label_field!r} column in the header ({_shown_header(header)}); "
            "pass --label-field (and --text-field) naming the columns"))
    if not labelled and not text_fields and "text" not in column and label_field not in column:
        # texts alone: a header names its text column, else its first line may be a text taken for one
        raise DataError(_header_hint(path, header, reader.dialect.delimiter, _peek(rows), labelled=False) or (
            f"{path} line 1: no 'text' column in the header ({_shown_header(header)}); add a first line naming "
            "the columns (e.g. text)"))
    _check_label_not_text(path, text_fields, label_field, labelled)
    missing = [f for f in text_fields if f not in column]
    if missing:
        raise DataError(_header_hint(path, header, reader.dialect.delimiter, labelled=labelled) or
                        f"{path} line 1: no column {missing[0]!r} in the header ({_shown_header(header)}); pass "
                        "--text-field naming the text column(s) (it applies to --eval-data too)")
    text_idx = [column[f] for f in text_fields] or [i for i, h in enumerate(header) if h != label_field]
    label_idx = column[label_field] if labelled else None
    for row in rows:
        where = f"{path} line {reader.line_num}"
        if len(row) != len(header):
            raise DataError(f"{where}: expected {len(header)} fields as in the header, got {len(row)}")
        text = _join_text(row[i].strip() for i in text_idx)
        if label_idx is None:
            yield where, text, None
            continue
        raw = row[label_idx].strip()
        several = _split_labels(raw, separator)
        if several is not None:
            yield where, text, tuple(_label_name(x, classes, where) for x in several)
        else:
            yield where, text, _label_name(raw, classes, where)


def _shown(name: str, width: int = 40) -> str:
    return name if len(name) <= width else name[: width - 3] + "..."


def _shown_header(header: list[str], columns: int = 12) -> str:
    """A header as an error line shows it: each name at most 40 characters, at most `columns` names."""
    more = f", ... ({len(header) - columns:,} more)" if len(header) > columns else ""
    return ", ".join(_shown(h) for h in header[:columns]) + more


def _peek(rows, count: int = 200) -> list:
    """Up to the next `count` rows (those before a malformed one: the first line's problem is the one to name)."""
    below = []
    try:
        below.extend(itertools.islice(rows, count))
    except DataError:
        pass
    return below


def _header_hint(path, header: list[str], delimiter: str, below=(), labelled=True) -> str | None:
    """What is wrong with a first line that names no expected column, when it shows: the other separator,
    or a line of data rather than a header (a number, a sentence, or a value the rows `below` repeat in the
    same column, as a label does)."""
    other = {",": ("\t", "tab-separated", "tsv"), "\t": (",", "comma-separated", "csv")}.get(delimiter)
    if other and len(header) == 1 and other[0] in header[0]:
        return (f"{path} line 1: the file looks {other[1]} "
                f"(its first line has no {'comma' if delimiter == ',' else 'tab'}"
                f" but {'tabs' if other[0] == chr(9) else 'commas'}); read it as {other[2]}:{path}")
    repeated = any(h and any(len(row) > j and row[j].strip() == h for row in below)
                   for j, h in enumerate(header[:100]))
    if repeated or any(_number(h) is not None or len(h.split()) > 3 for h in header):
        shown = _shown_header(header)
        if not labelled:
            return (f"{path} line 1: the first line looks like data, not a header ({shown}); add a first line "
                    "naming the columns (e.g. text)")
        return (f"{path} line 1: the first line looks like data, not a header ({shown}); add a first line naming "
                "the columns (e.g. text,label), or give the AG News layout (class number 1-N first, no header)")
    return None


def _check_label_not_text(path, fields, label_field, labelled) -> None:
    if labelled and label_field in fields:
        raise DataError(f"{path}: {label_field!r} is both the label and a text field (--label-field, --text-field): "
                        "the model would read the answer")


def _jsonl_rows(path, stream, text_fields, label_field, classes, separator="|", labelled=True):
    fields = list(text_fields) or ["text"]
    _check_label_not_text(path, text_fields, label_field, labelled)
    for number, line in enumerate(stream, start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: invalid JSON ({err.msg})") from None
        except RecursionError:
            raise DataError(f"{where}: JSON nested too deeply") from None
        except ValueError:  # an integer of more than 4,300 digits
            raise DataError(f"{where}: a number too long to read") from None
        if not isinstance(obj, dict):
            raise DataError(f"{where}: expected a JSON object")
        for name in [*fields, label_field] if labelled else fields:
            if name not in obj:
                raise DataError(f"{where}: no field {name!r} (use --text-field/--label-field)")
        parts = [obj[f] for f in fields]
        if not all(isinstance(p, str) for p in parts):
            raise DataError(f"{where}: text fields must be strings")
        text = _join_text(p.strip() for p in parts)
        if not labelled:
            yield where, text, None
            continue
        label = obj[label_field]
        if isinstance(label, list):  # a multi-label example (an empty list: none of the classes)
            if not all(isinstance(x, (str, int)) and not isinstance(x, bool) for x in label):
                raise DataError(f"{where}: a label list holds strings or integers, got {label!r}")
            names = [str(x).strip() for x in label]
            if not all(names):
                raise DataError(f"{where}: empty label in {label!r}")
            yield where, text, tuple(dict.fromkeys(_label_name(x, classes, where) for x in names))
            continue
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise DataError(f"{where}: label must be a string, an integer or a list of them, got {label!r}")
        several = _split_labels(label, separator) if isinstance(label, str) else None
        if several is not None:
            yield where, text, tuple(_label_name(x, classes, where) for x in several)
            continue
        yield where, text, _label_name(str(label).strip(), classes, where)


RUN_CLASSES = "the training data or run (labels.json)"  # where a file's class list came from without classes.txt


@dataclass(frozen=True)
class ClassList:
    """The class names a file's labels may index, and where they come from (for messages)."""

    names: tuple[str, ...] | None
    source: str
    indexed: list = field(default_factory=list)  # the first label read as an index of `names`, once one is


def _label_name(raw: str, classes: ClassList, where: str) -> str:
    """Headered/JSONL labels are names; with a class list an integer is a 0-based index."""
    names = classes.names
    if names is None or raw in names:
        return raw
    if _is_int(raw) and 0 <= int(raw) < len(names):
        if not classes.indexed:
            classes.indexed.append(raw)
        return names[int(raw)]
    raise DataError(f"{where}: label {raw!r} is not one of the classes in {classes.source} ({', '.join(names)})")


def _stray_empty_set(names: list, wheres: list[str]) -> str | None:
    """Where the first empty label set sits when no other set holds a class and some labels are single values:
    a missing label among single labels, not multi-label data (an empty set among label sets: none of the
    classes)."""
    if all(isinstance(n, tuple) for n in names) or any(isinstance(n, tuple) and n for n in names):
        return None
    return next((w for n, w in zip(names, wheres) if n == ()), None)


def _chain(first, rows):
    yield first
    yield from rows


def _join_text(parts) -> str:
    return " ".join(p for p in parts if p)


# ----------------------------------------------------------------------------- tfds


def _tfds_rows(spec: Spec, text_fields, label_field, data_dir):
    from textclf._tf import tf  # noqa: F401  (selects legacy Keras before tfds imports TF)

    import tensorflow_datasets as tfds

    name, split = spec.target, spec.split
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as err:  # tfds raises several kinds for unknown names
        raise DataError(f"unknown tfds dataset {name!r} ({str(err).splitlines()[0]})") from None
    if not builder.is_prepared():
        _check_downloadable(builder, name)
        try:
            builder.download_and_prepare()
        except Exception as err:
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise DataError(_offline_message(name, first)) from None
    features = builder.info.features
    label_field = label_field or "label"
    if label_field not in features:
        raise DataError(f"tfds:{name} has no feature {label_field!r}; features: {', '.join(features)}")
    fields = tuple(text_fields) or TFDS_TEXT_FIELDS.get(name) or _tfds_text_features(features, label_field)
    _check_label_not_text(f"tfds:{name}", fields, label_field, True)
    missing = [f for f in fields if f not in features]
    if not fields or missing:
        raise DataError(f"tfds:{name}: no text feature {missing[0] if missing else ''!r}; "
                        f"features: {', '.join(features)} (use --text-field)")
    label_feature = features[label_field]
    classes = tuple(label_feature.names) if hasattr(label_feature, "names") else None
    try:
        ds = builder.as_dataset(split=split)
    except Exception as err:
        raise DataError(f"tfds:{name}: cannot read split {split!r} ({str(err).splitlines()[0]})") from None

    def rows():
        for i, ex in enumerate(tfds.as_numpy(ds)):
            text = _join_text(_decode(ex[f]).strip() for f in fields)
            raw = ex[label_field]
            label = classes[int(raw)] if classes else _decode(raw)
            yield f"tfds:{name}:{split} example {i}", text, label

    return rows(), classes


def _decode(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _tfds_text_features(features, label_field) -> tuple[str, ...]:
    import tensorflow_datasets as tfds

    names = [n for n, f in features.items() if n != label_field and isinstance(f, tfds.features.Text)]
    for preferred in ("text", "sentence", "content"):
        if preferred in names:
            return (preferred,)
    return tuple(names)


def _check_downloadable(builder, name: str) -> None:
    """Fail fast offline: tfds retries a dead host for minutes before giving up."""
    try:
        urls = list(builder.url_infos or {})
    except Exception:
        urls = []
    for host in sorted({urlparse(u).hostname for u in urls if urlparse(u).hostname}):
        try:
            socket.create_connection((host, 443), timeout=5).close()
        except OSError:
            raise DataError(_offline_message(name, f"cannot reach {host}")) from None


def _offline_message(name: str, reason: str) -> str:
    return (
        f"tfds:{name} is not prepared and cannot be downloaded ({reason}); prepare it on a "
        f"machine with network and pass --tfds-data-dir DIR (or set TFDS_DATA_DIR), or use "
        f"a local file, e.g. --data csv:../shared/data/ag_news/test.csv.gz"
    )


# ----------------------------------------------------------------------------- holdout


def fold_of(examples: Examples, folds: int, seed: int) -> np.ndarray:
    """Each example's fold in [0, folds): stratified (each class dealt round-robin after a seeded shuffle).
    Phrase data (textclf.data.phrases: SST-2's training file) deals whole sentences with their phrases."""
    from textclf.data.phrases import grouped_folds, phrase_groups

    rng = np.random.default_rng(seed)
    groups = phrase_groups(examples.texts)
    if groups is not None:
        return grouped_folds(groups, examples.strata, folds, rng)
    assignment = np.empty(len(examples), dtype=np.int64)
    offset = 0
    strata = examples.strata
    for label in np.unique(strata):
        idx = np.flatnonzero(strata == label)
        rng.shuffle(idx)
        assignment[idx] = (np.arange(len(idx)) + offset) % folds  # classes continue where the last left off
        offset += len(idx)
    return assignment


def fold_split(examples: Examples, folds: int, fold: int, seed: int) -> tuple[Examples, Examples]:
    """(the other folds, fold `fold`) of a stratified, seeded k-fold split."""
    if len(examples) < folds:
        raise DataError(f"{examples.source}: {len(examples)} examples cannot make {folds} folds")
    held = fold_of(examples, folds, seed) == fold
    tag = f"{examples.source} (fold {fold + 1} of {folds}, seed {seed})"
    return (examples.subset(np.flatnonzero(~held), f"{examples.source} (without fold {fold + 1} of {folds})"),
            examples.subset(np.flatnonzero(held), tag))


EVAL_PART = "an eval split (or give --eval-data)"
VALIDATION_PART = "a validation part (--set training.validation_fraction=0 trains without one)"


def holdout_split(examples: Examples, fraction: float, seed: int, part: str = EVAL_PART) -> tuple[Examples, Examples]:
    """Split off a stratified, seeded `fraction` for evaluation (when no eval data is given), or as the
    validation `part` of the training data."""
    held = holdout_mask(examples, fraction, seed, part)
    tag = f"{examples.source} (held-out {fraction:g}, seed {seed})"
    return examples.subset(~held, examples.source), examples.subset(held, tag)


def holdout_mask(examples: Examples, fraction: float, seed: int, part: str = EVAL_PART) -> np.ndarray:
    """Which examples `holdout_split` holds out (a boolean mask): a stratified, seeded share of each class, at
    least one and never its last (a class of one example is trained on, not held out); of phrase data
    (textclf.data.phrases: SST-2's training file), whole sentences with their phrases. `part`: what the held-out
    examples are for, as an error names it."""
    from textclf.data.phrases import grouped_mask, phrase_groups

    rng = np.random.default_rng(seed)
    strata = examples.strata
    groups = phrase_groups(examples.texts)
    if groups is not None:
        held = grouped_mask(groups, strata, fraction, rng)
    else:
        eval_idx: list[np.ndarray] = []
        for label in np.unique(strata):
            idx = np.flatnonzero(strata == label)
            rng.shuffle(idx)
            eval_idx.append(idx[: min(len(idx) - 1, max(1, int(round(len(idx) * fraction))))])
        held = np.zeros(len(examples), dtype=bool)
        held[np.concatenate(eval_idx)] = True
    if held.all() or not held.any():
        if groups is not None:
            raise DataError(f"{examples.source}: its {len(examples):,} texts are the phrases of "
                            f"{len(np.unique(groups)):,} sentences (phrase data is split by sentence): too few to "
                            f"hold out {part}")
        raise DataError(f"{examples.source}: too few examples to hold out {part}: the {len(examples):,} it is "
                        f"drawn from are one of each of {len(np.unique(strata)):,} classes, and a class needs two "
                        "(one to train on, one to hold out)")
    return held


# ----------------------------------------------------------------------------- train/eval


def natural_eval_spec(train_spec: str) -> str | None:
    """The eval split that goes with a training source, when it has one."""
    parsed = parse_spec(train_spec)
    if parsed.kind == "sample" and parsed.target == "train":
        return "sample:eval"
    if parsed.kind == "tfds" and parsed.split in (None, "train"):
        return f"tfds:{parsed.target}:test"
    return None


# The last data read by load_train_eval, and what it was read from: `train` with the auto model reads
# the data once to choose the model and again to train it (SST-2: 0.9 s each).
_LAST_READ: list = []


def load_train_eval(data, seed: int) -> tuple[Examples, Examples]:
    """Training and eval examples for a DataConfig: eval data, natural split, a fold or held out.

    A second call with the same config and seed in one process, its files unchanged, gives the first
    call's examples without reading the files again (treat them as read-only). The split's seed is
    data.split_seed when set (a distilled student keeps its teacher's), else `seed`."""
    seed = split_seed(data, seed)
    key = (repr(data), seed, _file_stamp(data.train), _file_stamp(data.eval))
    if _LAST_READ and _LAST_READ[0][0] == key:
        return _LAST_READ[0][1]
    _LAST_READ.clear()
    train = load_examples(data.train, **_file_options(data))
    if data.fold is not None:
        result = fold_split(train, data.folds, data.fold, seed)
    elif data.eval or natural_eval_spec(data.train):
        result = train, load_eval(data, seed, train.label_names, multilabel=train.multilabel)
    else:
        result = holdout_split(train, data.eval_fraction, seed)
    _LAST_READ.append((key, result))
    return result


def load_training(data) -> Examples:
    """All the training examples of a DataConfig (no eval part split off), read with its options."""
    return load_examples(data.train, **_file_options(data))


def reads_without_tensorflow(data) -> bool:
    """Whether the data (a DataConfig) is read without TensorFlow: files and the sample, not tfds."""
    try:
        return all(parse_spec(s).kind != "tfds" for s in (data.train, data.eval) if s)
    except DataError:
        return True  # a malformed spec: reading it says so, at once


def _file_stamp(spec: str | None):
    """A data file's size and modification time (None for other sources and missing files)."""
    if not spec:
        return None
    try:
        parsed = parse_spec(spec)
        if parsed.kind not in ("csv", "tsv", "jsonl"):
            return None
        stat = os.stat(parsed.target)
    except (DataError, OSError):
        return None
    return stat.st_size, stat.st_mtime_ns


def load_eval(data, seed: int, label_names: Sequence[str], spec: str | None = None, *,
              multilabel: bool | None = None) -> Examples:
    """Eval examples of a DataConfig (or `spec`): its eval data, else the training data's held-out
    part (for a finished run: the same rows as in training, same seed). `multilabel`: the run's kind."""
    eval_spec = spec or data.eval or (None if data.fold is not None else natural_eval_spec(data.train))
    kind = {} if multilabel is None else {"multilabel": multilabel}
    if eval_spec is not None:
        return load_examples(eval_spec, label_names=label_names, default_split="test", **kind, **_file_options(data))
    train = load_examples(data.train, label_names=label_names, **kind, **_file_options(data))
    seed = split_seed(data, seed)
    if data.fold is not None:
        return fold_split(train, data.folds, data.fold, seed)[1]
    return holdout_split(train, data.eval_fraction, seed)[1]


def split_seed(data, seed: int) -> int:
    """The seed of a DataConfig's eval part and folds: data.split_seed when set, else the run's `seed`."""
    return seed if getattr(data, "split_seed", None) is None else int(data.split_seed)


def _file_options(data) -> dict:
    return dict(text_fields=data.text_fields, label_field=data.label_field, tfds_data_dir=data.tfds_data_dir,
                label_separator=data.label_separator, max_text_chars=getattr(data, "max_text_chars", None))
