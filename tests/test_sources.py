"""Data sources: AG layout, headered CSV/TSV, JSONL, sample, tfds (mocked), and bad input."""

import gzip
import json
import socket

import numpy as np
import pytest

from conftest import SHARED, ag_rows, write_csv
from textclf.config import DataConfig
from textclf.data.sources import holdout_split, load_examples, load_eval, load_train_eval, parse_spec
from textclf.errors import DataError


def test_ag_layout_joins_title_and_description_and_names_classes(tmp_path):
    path = write_csv(tmp_path / "d" / "train.csv", [["3", "Wall St. Bears", "Short-sellers \\$1 billion"],
                                                    ["1", "Peace talks", "Envoys meet, again"]])
    ex = load_examples(f"csv:{path}")
    assert list(ex.texts) == ["Wall St. Bears Short-sellers \\$1 billion", "Peace talks Envoys meet, again"]
    assert ex.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert list(ex.labels) == [2, 0]


def test_gzip_and_bare_path_and_no_classes_file(tmp_path):
    path = tmp_path / "x.csv.gz"
    path.write_bytes(gzip.compress(b'"2","a","b"\n"4","c","d"\n'))
    ex = load_examples(str(path))
    assert ex.label_names == ("2", "4") and list(ex.labels) == [0, 1]


def test_headered_csv_with_fields_and_string_labels(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("id,headline,body,topic\n1,Cup final,Late goal,sport\n2,Rates rise,Bank acts,money\n")
    ex = load_examples(f"csv:{path}", text_fields=["headline", "body"], label_field="topic")
    assert list(ex.texts) == ["Cup final Late goal", "Rates rise Bank acts"]
    assert ex.label_names == ("money", "sport") and list(ex.labels) == [1, 0]


def test_tsv_header_with_label_column_is_detected(tmp_path):
    path = tmp_path / "s.tsv"
    path.write_text("sentence\tlabel\na gripping , funny film \t1\ndull and slow \t0\n")
    ex = load_examples(str(path))
    assert list(ex.texts) == ["a gripping , funny film", "dull and slow"]
    assert ex.label_names == ("0", "1") and list(ex.labels) == [1, 0]


def test_jsonl(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        json.dumps({"text": "goal!", "label": "sport"})
        + "\n\n"
        + json.dumps({"text": "rates", "label": "money"})
        + "\n"
    )
    ex = load_examples(f"jsonl:{path}")
    assert list(ex.texts) == ["goal!", "rates"] and ex.label_names == ("money", "sport")


def test_eval_labels_map_onto_the_runs_classes(tmp_path):
    path = write_csv(tmp_path / "e" / "eval.csv", [["4", "t", "d"]])
    ex = load_examples(f"csv:{path}", label_names=["World", "Sports", "Business", "Sci/Tech"])
    assert list(ex.labels) == [3]
    with pytest.raises(DataError, match="label 'Sci/Tech' is not one of the classes"):
        load_examples(f"csv:{path}", label_names=["World", "Sports"])


@pytest.mark.parametrize("content, message", [
    ("", "data file is empty"),
    ('"1","a","b"\n"2"\n', "line 2: expected label,title"),
    ('"1","a","b"\n"5","c","d"\n', "line 2: label 5 is outside the class list (1..4 in"),
    ('"1","a","b"\n"2","",""\n', "line 2: empty text"),
    ('"1","a","b"\n"x1","c","d"\n', "line 2: label 'x1' is not an integer"),
    ('"1","a","b\n', "malformed CSV"),
])
def test_bad_csv_says_which_line(tmp_path, content, message):
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError) as info:
        load_examples(f"csv:{path}")
    assert message in str(info.value)


def test_missing_and_non_utf8_files(tmp_path):
    with pytest.raises(DataError, match="data file not found"):
        load_examples(f"csv:{tmp_path / 'nope.csv'}")
    bad = tmp_path / "latin1.csv"
    bad.write_bytes(b'"1","caf\xe9","b"\n')
    with pytest.raises(DataError, match="line 1: not valid UTF-8"):
        load_examples(f"csv:{bad}")


def test_unknown_spec_lists_the_forms():
    with pytest.raises(DataError, match="use sample, tfds:NAME"):
        parse_spec("parquet:x.parquet")


def test_sample_is_balanced_and_splits_are_disjoint():
    train, evaluation = load_examples("sample"), load_examples("sample:eval")
    assert len(train) == 240 and len(evaluation) == 60
    assert np.bincount(train.labels).tolist() == [60] * 4
    assert np.bincount(evaluation.labels).tolist() == [15] * 4
    assert not set(train.texts) & set(evaluation.texts)
    assert len(set(load_examples("sample:all").texts)) == 300


def test_holdout_is_stratified_seeded_and_reproduced_for_evaluation(tmp_path):
    path = write_csv(tmp_path / "d" / "all.csv", ag_rows(20))
    data = DataConfig(train=f"csv:{path}", eval_fraction=0.25)
    train, held = load_train_eval(data, seed=3)
    assert len(held) == 20 and np.bincount(held.labels).tolist() == [5] * 4
    assert not set(train.texts) & set(held.texts)
    again = load_eval(data, 3, train.label_names)
    assert list(again.texts) == list(held.texts)
    assert list(holdout_split(load_examples(f"csv:{path}"), 0.25, 4)[1].texts) != list(held.texts)


def test_a_class_of_one_example_is_trained_on_not_held_out(tmp_path):
    """A class with a single example keeps it for training (holding it out left the class untrained); when
    every class has one, the error names the part that was asked for (a validation part was called "an eval
    split" though --eval-data was given) and why."""
    from textclf.data.sources import VALIDATION_PART

    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "".join(f"text {i} a,A\ntext {i} b,B\n" for i in range(10)) + "lone one,C\n")
    examples = load_examples(f"csv:{path}")
    fit, held = holdout_split(examples, 0.2, seed=1)
    assert sorted(held.label_names[i] for i in held.labels) == ["A", "A", "B", "B"]
    assert "lone one" in list(fit.texts)
    path.write_text("text,label\n" + "".join(f"text {i},c{i}\n" for i in range(40)))
    lone = load_examples(f"csv:{path}")
    with pytest.raises(DataError, match=r"too few examples to hold out an eval split \(or give --eval-data\): the "
                                        r"40 it is drawn from are one of each of 40 classes, and a class needs two"):
        holdout_split(lone, 0.1, seed=1)
    with pytest.raises(DataError, match=r"hold out a validation part \(--set training.validation_fraction=0 "):
        holdout_split(lone, 0.1, seed=1, part=VALIDATION_PART)


def test_tfds_source_through_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    # mock_data replaces the download itself; only textclf's reachability probe is skipped.
    monkeypatch.setattr("textclf.data.sources._check_downloadable", lambda builder, name: None)
    with tfds.testing.mock_data(num_examples=12):
        ex = load_examples("tfds:ag_news_subset")
        test = load_examples("tfds:ag_news_subset", default_split="test", label_names=ex.label_names)
        with pytest.raises(DataError, match="'label' is both the label and a text field"):
            load_examples("tfds:ag_news_subset", text_fields=["title", "label"])
    assert len(ex) == 12 and len(test) == 12
    assert ex.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert all(" " in t for t in ex.texts)  # title + " " + description


def test_tfds_offline_fails_fast_with_alternatives(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(socket, "create_connection", refuse)
    with pytest.raises(DataError) as info:
        load_examples("tfds:ag_news_subset", tfds_data_dir=str(tmp_path))
    message = str(info.value)
    assert "tfds:ag_news_subset is not prepared and cannot be downloaded" in message
    assert "--tfds-data-dir" in message and "csv:" in message
    assert "\n" not in message


@pytest.mark.skipif(not (SHARED / "data/ag_news/test.csv.gz").exists(), reason="../shared AG News file absent")
def test_real_ag_news_test_file():
    ex = load_examples(f"csv:{SHARED / 'data/ag_news/test.csv.gz'}")
    assert len(ex) == 7600 and np.bincount(ex.labels).tolist() == [1900] * 4
    assert ex.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert ex.texts[0].startswith("Fears for T N pension after talks")


@pytest.mark.skipif(not (SHARED / "data/sst2/dev.tsv").exists(), reason="../shared SST-2 files absent")
def test_real_sst2_dev_tsv():
    ex = load_examples(f"tsv:{SHARED / 'data/sst2/dev.tsv'}", text_fields=["sentence"], label_field="label")
    assert len(ex) == 872 and np.bincount(ex.labels).tolist() == [428, 444]
    assert not ex.texts[0].endswith(" ")


def test_the_same_data_is_read_once_per_process_until_its_file_changes(tmp_path, monkeypatch):
    """`train` with the auto model reads the data to choose the model and again to train it: the second
    read is the first one's examples, unless the file changed in between."""
    import os

    from textclf.data import sources

    path = write_csv(tmp_path / "t.csv", [["1", "a b", "c"], ["2", "d e", "f"]] * 10)
    data = DataConfig(train=f"csv:{path}", eval_fraction=0.25)
    reads = []
    real = sources.load_examples
    monkeypatch.setattr(sources, "load_examples", lambda *a, **k: reads.append(a) or real(*a, **k))
    first = load_train_eval(data, seed=1)
    assert load_train_eval(data, seed=1) is first and len(reads) == 1
    assert load_train_eval(data, seed=2) is not first and len(reads) == 2  # another split: read again
    write_csv(path, [["1", "new text", "x"], ["2", "other", "y"]] * 10)
    os.utime(path, ns=(1, 1))  # a different stamp even within the file system's time resolution
    changed = load_train_eval(data, seed=2)
    assert len(reads) == 3 and "new text x" in set(changed[0].texts) | set(changed[1].texts)


def test_a_headerless_csv_with_short_fields_is_named_data_by_its_repeated_labels(tmp_path):
    """`Federer wins,Sports` as a first line: no number, no sentence, but `Sports` recurs in the column
    below, as labels do: the first line is data, and the message says to add a header."""
    import pytest

    from textclf.data.sources import load_examples
    from textclf.errors import DataError

    path = tmp_path / "d.csv"
    path.write_text("Federer wins,Sports\nMarkets fall,Business\nCup final,Sports\n")
    with pytest.raises(DataError, match="the first line looks like data, not a header .*add a first line naming"):
        load_examples(f"csv:{path}")
    path.write_text("headline,topic\nFederer wins,Sports\nCup final,Sports\n")  # a real header: the usual hint
    with pytest.raises(DataError, match="no 'label' column in the header .headline, topic.; pass --label-field"):
        load_examples(f"csv:{path}")


def test_texts_alone_are_read_without_a_label_column_in_every_layout(tmp_path):
    """load_texts reads what load_examples reads, a label column optional and never read: a text-only header,
    a label column among others (skipped, whatever it holds), JSONL without a label, an AG-layout file with
    class numbers outside its classes.txt; more than the 200 rows the header check looks at; errors by line."""
    from textclf.data.sources import load_texts

    rows = [f"text number {i}" for i in range(250)]
    only = tmp_path / "only.csv"
    only.write_text("text\n" + "\n".join(rows) + "\n")
    assert load_texts(f"csv:{only}") == rows  # all 250: none lost to the header's look at the rows below
    mixed = tmp_path / "mixed.tsv"
    mixed.write_text("label\ttitle\tbody\nnot a class\tA title\tits body\n\tOther\tmore\n")
    assert load_texts(f"tsv:{mixed}") == ["A title its body", "Other more"]
    assert load_texts(f"tsv:{mixed}", text_fields=["body"]) == ["its body", "more"]
    lines = tmp_path / "t.jsonl"
    lines.write_text('{"text": "one"}\n\n{"text": "two", "label": [3.5]}\n')
    assert load_texts(f"jsonl:{lines}") == ["one", "two"]
    ag = tmp_path / "ag" / "train.csv"
    write_csv(ag, [("9", "Title", "Description")])
    (ag.parent / "classes.txt").write_text("A\nB\n")
    assert load_texts(f"csv:{ag}") == ["Title Description"]
    with pytest.raises(DataError, match=r"only.csv line 1: the first line looks like data.*\(e\.g\. text\)$"):
        only.write_text("a first text of four words\nand a second\n")
        load_texts(f"csv:{only}")
    with pytest.raises(DataError, match=r"only.csv line 1: no 'text' column in the header \(Great movie!\)"):
        only.write_text("Great movie!\nTerrible plot and acting throughout\nLoved it\n")  # a short first text
        load_texts(f"csv:{only}")
    only.write_text("text\n" + "\n".join(rows[:10]) + "\n \n" + "\n".join(rows[10:250]) + "\n")
    with pytest.raises(DataError, match=r"only.csv line 12: empty text"):  # its own line, however many follow
        load_texts(f"csv:{only}")
    with pytest.raises(DataError, match=r"t.jsonl line 2: no field 'text'"):
        lines.write_text('{"text": "one"}\n{"body": "two"}\n')
        load_texts(f"jsonl:{lines}")
    with pytest.raises(DataError, match=r"only.csv line 3: empty text"):
        only.write_text("text\nfine\n \n")
        load_texts(f"csv:{only}")
    with pytest.raises(DataError, match=r"only.csv line 2: a text of 12 characters, longer than the limit of 5"):
        only.write_text("text\nhello there!\n")
        load_texts(f"csv:{only}", max_text_chars=5)
    with pytest.raises(DataError, match=r"only.csv line 203: expected 1 fields"):  # past the look: still an error
        only.write_text("text\n" + "\n".join(rows[:201]) + "\nx,y\n")
        load_texts(f"csv:{only}")
    with pytest.raises(DataError, match=r"only.csv line 3: expected 1 fields"):  # within the look
        only.write_text("text\nfine\nx,y\n")
        load_texts(f"csv:{only}")


def test_a_monster_line_is_refused_as_it_is_read_not_after(tmp_path):
    """A gzip of a few MB may hold a line of a GB: the reader stops once a line is past what any text within
    the limit could take (12 characters a text character + 16 MiB), naming the line; UTF-16, deep JSON and
    huge numbers are one line each too."""
    import tracemalloc

    from textclf.textfiles import read_text

    bomb = tmp_path / "bomb.csv.gz"
    with gzip.open(bomb, "wb", compresslevel=9) as fh:
        fh.write(b"text,label\nfine,A\n")
        for _ in range(256):  # a 256 MiB line
            fh.write(b"a" * (1 << 20))
        fh.write(b",B\n")
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb.csv.gz line 3: longer than 18,277,216 characters, more than a "
                                            r"text within the limit of 125,000 characters takes \(--max-text-chars"):
            load_examples(f"csv:{bomb}", max_text_chars=125_000)
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()
    assert peak_mb < 128, peak_mb  # a few 4 MiB pieces past the bound, not the 256 MiB line
    assert read_text(str(bomb))[:11] == "text,label\n"  # no limit asked: read whole
    utf16 = tmp_path / "u.csv"
    utf16.write_bytes("text,label\nhello,A\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"u.csv is UTF-16 text; save it as UTF-8"):
        load_examples(f"csv:{utf16}")
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"text": "a", "label": "A"}\n{"text": "b", "label": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    with pytest.raises(DataError, match=r"deep.jsonl line 2: JSON nested too deeply"):
        load_examples(f"jsonl:{deep}")
    deep.write_text('{"text": "a", "label": ' + "7" * 5000 + "}\n")
    with pytest.raises(DataError, match=r"deep.jsonl line 1: a number too long to read"):
        load_examples(f"jsonl:{deep}")


def test_duplicate_and_countless_columns(tmp_path):
    """Every column but the label is text, by position: two of one name are both read (one was silently read
    twice), empty trailing columns (a spreadsheet's export) too; a name that must say which column it means
    (the label, a --text-field) is refused when two columns have it; a header of 100k columns (looked up by a
    dict now, not list.index) is shown in an error line in short."""
    path = tmp_path / "d.csv"
    path.write_text("text,text,label\nalpha,beta,A\ngamma,delta,B\n")
    assert list(load_examples(f"csv:{path}").texts) == ["alpha beta", "gamma delta"]
    with pytest.raises(DataError, match=r"d.csv line 1: two columns named 'text' \(columns 1 and 2\)"):
        load_examples(f"csv:{path}", text_fields=["text"])
    path.write_text("text,label,,\nhello world,pos,,\nbad day,neg,,\n")
    assert list(load_examples(f"csv:{path}").texts) == ["hello world", "bad day"]
    path.write_text("text,label,label\nalpha,A,A\ngamma,B,B\n")
    with pytest.raises(DataError, match="two columns named 'label'"):
        load_examples(f"csv:{path}")
    names = [f"c{i}" for i in range(100_000)]
    path.write_text(",".join(names) + "\n" + ",".join("x" for _ in names) + "\n")
    with pytest.raises(DataError) as err:
        load_examples(f"csv:{path}")
    assert "(99,988 more)" in str(err.value) and len(str(err.value)) < 400


def test_the_label_cannot_also_be_read_as_text(tmp_path):
    """--text-field label --label-field label scored 100%: the model read the answer."""
    path = tmp_path / "d.csv"
    path.write_text("text,label\nalpha,A\nbeta,B\n")
    with pytest.raises(DataError, match="'label' is both the label and a text field"):
        load_examples(f"csv:{path}", text_fields=["label"], label_field="label")
    lines = tmp_path / "d.jsonl"
    lines.write_text('{"text": "a", "y": "A"}\n')
    with pytest.raises(DataError, match="'y' is both the label and a text field"):
        load_examples(f"jsonl:{lines}", text_fields=["text", "y"], label_field="y")


def test_a_classes_file_naming_a_class_twice_is_refused(tmp_path):
    ag = write_csv(tmp_path / "ag" / "train.csv", [("1", "Title", "Text"), ("3", "Other", "More")])
    (ag.parent / "classes.txt").write_text("A\nB\nA\n")
    with pytest.raises(DataError, match=r"classes.txt: class 'A' is named twice"):
        load_examples(f"csv:{ag}")


def test_integer_labels_read_as_a_run_s_class_indices_are_said(tmp_path):
    """A file's integer labels, with no classes.txt beside it, index the run's classes: evaluating a news run
    on a 0/1 sentiment file read 0 as World and 1 as Sports and scored it without a word. Its source now says
    so (what evaluate and the run summary print); names, and classes.txt's indices, are read as before."""
    path = tmp_path / "e.csv"
    path.write_text("text,label\nnice film,1\nbad film,0\n")
    run_classes = ["World", "Sports", "Business", "Sci/Tech"]
    read = load_examples(f"csv:{path}", label_names=run_classes)
    assert [read.label_names[i] for i in read.labels] == ["Sports", "World"]
    assert read.source == (f"csv:{path} (its integer labels read as indices of the run's classes: 0 = World, "
                           "1 = Sports, 2 = Business, 3 = Sci/Tech)")
    path.write_text("text,label\nnice film,Sports\nbad film,World\n")
    assert load_examples(f"csv:{path}", label_names=run_classes).source == f"csv:{path}"
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    path.write_text("text,label\nnice film,1\nbad film,0\n")
    assert load_examples(f"csv:{path}", label_names=run_classes).source == f"csv:{path}"  # classes.txt says so
