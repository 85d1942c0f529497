"""The one reader of user text files: its lines read in pieces, and one error line for each way a file is bad."""

from __future__ import annotations

import gzip
import io

import pytest

from textclf import textfiles
from textclf.errors import DataError
from textclf.textfiles import iter_lines, read_text


@pytest.fixture
def small_chunks(monkeypatch):
    """Pieces of 7 bytes: every line, character and mark of a short file crosses a piece's edge somewhere."""
    monkeypatch.setattr(textfiles, "CHUNK", 7)


def test_lines_are_read_in_pieces_and_split_at_newlines_only(tmp_path, small_chunks):
    text = "\ufeffalpha beta\r\n\n" + "x" * 40 + "\nune ligne\u2028même\fligne\nlast without newline"
    path = tmp_path / "t.txt"
    path.write_text(text, encoding="utf-8")
    expected = text[1:].split("\n")
    assert list(iter_lines(str(path))) == expected  # the BOM dropped, "\r" left to the caller
    assert read_text(str(path)) == text[1:]
    packed = tmp_path / "t.txt.gz"
    packed.write_bytes(gzip.compress(text.encode("utf-8")))
    assert list(iter_lines(str(packed))) == expected
    path.write_text("a\n\n", encoding="utf-8")
    assert list(iter_lines(str(path))) == ["a", ""]  # as `wc -l` counts: two lines, the last one blank
    path.write_text("", encoding="utf-8")
    assert list(iter_lines(str(path))) == []


def test_lines_are_bounded_as_they_are_read(tmp_path, small_chunks):
    path = tmp_path / "t.txt"
    path.write_text("short\n" + "y" * 30 + "\nnever read\n", encoding="utf-8")
    lines = iter_lines(str(path), max_line_chars=10, why="more than a text may have")
    assert next(lines) == "short"  # lines come as they are read, before the bad one is reached
    with pytest.raises(DataError, match=r"t.txt line 2: longer than 10 characters, more than a text may have"):
        next(lines)


def test_utf8_error_names_its_line_across_a_piece_edge(tmp_path, small_chunks):
    # "€" (3 bytes) is cut after its second byte, which the decoder holds; the bad byte right after it is followed
    # by a newline: the bad byte's line is counted in the held bytes plus the new piece (counted in the new piece
    # alone, the count ran the held bytes' length past the bad byte and took in that newline: line 3)
    path = tmp_path / "t.txt"
    path.write_bytes(b"abcd\n\xe2\x82\xac\xff\nzz\n")
    with pytest.raises(DataError, match=r"t.txt line 2: not valid UTF-8 text"):
        list(iter_lines(str(path)))
    for cut in range(1, 14):  # wherever the piece edge falls, the line is the same
        textfiles.CHUNK = cut
        with pytest.raises(DataError, match=r"line 2: not valid UTF-8 text"):
            read_text(str(path))


def test_utf16_is_refused_however_short_the_first_read(monkeypatch):
    class Trickle(io.RawIOBase):  # a pipe that gives one byte a read
        def __init__(self, data):
            self.data = data

        def readable(self):
            return True

        def read(self, n=-1):
            piece, self.data = self.data[:1], self.data[1:]
            return piece

    monkeypatch.setattr("sys.stdin", type("S", (), {"buffer": Trickle("text\nhello\n".encode("utf-16"))})())
    with pytest.raises(DataError, match=r"- is UTF-16 text; save it as UTF-8"):
        read_text("-")
    monkeypatch.setattr("sys.stdin", type("S", (), {"buffer": Trickle("\ufeffhi\nthere\n".encode("utf-8"))})())
    assert list(iter_lines("-")) == ["hi", "there"]  # a UTF-8 BOM split over three reads is still dropped


def test_a_file_that_cannot_be_read_is_one_error_before_any_line(tmp_path):
    with pytest.raises(DataError, match=r"^file not found: .*none.txt$"):
        textfiles.check_readable(str(tmp_path / "none.txt"))
    with pytest.raises(DataError, match="path is a directory, not a file"):
        next(iter_lines(str(tmp_path)))
    bad = tmp_path / "x.txt.gz"
    bad.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="not a valid gzip file"):
        next(iter_lines(str(bad)))
    textfiles.check_readable("-")  # stdin is read when its lines are asked for


def test_a_data_file_whose_rows_would_not_fit_in_memory_is_refused_as_it_is_read(tmp_path, monkeypatch):
    """A 1 MB gzip may hold 100M short rows (24 GB as Python rows: the machine ran out of memory); a data file's
    reader adds up what its rows will take and refuses it once that passes the memory available, naming it."""
    from textclf.data.sources import load_examples

    path = tmp_path / "rows.tsv.gz"
    path.write_bytes(gzip.compress(b"text\tlabel\n" + b"a\tA\nb\tB\n" * 100_000))
    assert len(load_examples(f"tsv:{path}")) == 200_000  # within this machine's memory: read
    monkeypatch.setattr(textfiles, "memory_budget", lambda: 10 << 20)  # a machine with 10 MiB to spare
    with pytest.raises(DataError, match=r"rows.tsv.gz: too large for this machine's memory: its first [\d,]+ lines "
                                        r"\([\d,]+ characters\) would take about \d+ MiB as rows, more than the 10 MiB "
                                        r"available; use a part of it"):
        load_examples(f"tsv:{path}")
    assert read_text(str(path)).count("\n") == 200_001  # only data files count their rows
