"""`textclf data stats`: counts checked against an independent read of the files; planted duplicates found."""

from __future__ import annotations

import csv
import gzip
import json
from collections import Counter

import pytest

from conftest import SHARED, ag_rows, cli, write_csv

SST2 = SHARED / "data" / "sst2"


def test_planted_duplicates_and_leakage_are_found(tmp_path):
    train_rows, eval_rows = ag_rows(30, seed=1), ag_rows(10, seed=2)
    planted = eval_rows[:7]
    train = write_csv(tmp_path / "ag" / "train.csv", train_rows + planted + train_rows[:3])
    evaluation = write_csv(tmp_path / "ag" / "eval.csv", eval_rows)
    plot = tmp_path / "h.png"
    result = cli("data", "stats", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--plot", plot, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["examples"] == 130
    assert data["duplicates"]["texts"] == 3 and data["duplicates"]["extra_copies"] == 3
    assert data["leakage"]["texts_in_both"] == 7 and data["leakage"]["eval_examples_seen_in_training"] == 7
    assert plot.read_bytes().startswith(b"\x89PNG")
    counts = Counter(r[0] for r in train_rows + planted + train_rows[:3])
    names = ["World", "Sports", "Business", "Sci/Tech"]
    assert {c["label"]: c["count"] for c in data["classes"]} == {names[int(k) - 1]: n for k, n in counts.items()}
    assert data["auto"]["model"] == "ngram-linear" and "samples / " in data["auto"]["reason"]
    table = cli("data", "stats", f"csv:{train}", "--eval-data", f"csv:{evaluation}")
    assert "leakage: 7 texts" in table.stdout and "duplicates: 3 texts" in table.stdout


def test_duplicates_with_different_labels_are_counted(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("label,text\na,same words\nb,Same  words\na,other\nb,more\n")
    data = json.loads(cli("data", "stats", f"csv:{path}", "--json").stdout)
    assert data["duplicates"] == {"texts": 1, "extra_copies": 1, "with_different_labels": 1,
                                  "examples": ["same words"]}


def test_token_lengths_follow_the_transformers_rules():
    from textclf.datastats import tokens

    assert tokens("Stocks RALLY, as oil falls!") == ["stocks", "rally", "as", "oil", "falls"]
    assert tokens("ÉCOLE no\u00a0break") == ["École", "no\u00a0break"]  # ASCII-only, as Keras


@pytest.mark.skipif(not (SST2 / "train.tsv.gz").exists(), reason="needs ../shared/data/sst2 (GLUE SST-2)")
def test_sst2_counts_match_an_independent_read():
    with gzip.open(SST2 / "train.tsv.gz", "rt", encoding="utf-8") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    expected = Counter(r[1] for r in rows)
    data = json.loads(cli("data", "stats", f"tsv:{SST2 / 'train.tsv.gz'}", "--eval-data", f"tsv:{SST2 / 'dev.tsv'}",
                          "--json").stdout)
    assert data["examples"] == len(rows) == 67349
    assert {c["label"]: c["count"] for c in data["classes"]} == dict(expected)
    assert data["eval"]["examples"] == 872
    words = sorted(len(r[0].split()) for r in rows)
    assert data["words"]["max"] == words[-1] and data["words"]["min"] == words[0]


@pytest.mark.skipif(not (SHARED / "data" / "ag_news" / "test.csv.gz").exists(), reason="needs ../shared AG News")
def test_ag7600_counts(tmp_path):
    from benchlib import write_split

    train, evaluation = write_split(tmp_path / "ag7600")
    data = json.loads(cli("data", "stats", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--json").stdout)
    assert data["examples"] == 6000 and [c["count"] for c in data["classes"]] == [1500] * 4
    assert data["eval"]["examples"] == 1600 and data["leakage"]["texts_in_both"] == 0
