"""Long texts: memory bounded by the work. An enormous text is refused up front in one line naming the
limit and the option; texts of 200k words train the default model to a complete run."""

from __future__ import annotations

import json
import random

import pytest

from conftest import WORDS, ag_rows, assert_one_line_error, cli, write_csv


def _huge(chars: int) -> str:
    return ("stocks profit shares bank market oil " * (chars // 36 + 1))[:chars]


@pytest.mark.parametrize("kind", ["csv", "jsonl"])
def test_a_50_mb_text_is_refused_in_one_line_naming_the_option(tmp_path, kind):
    rows = ag_rows(5, seed=1)
    rows[3][2] = _huge(50 * 2**20)
    if kind == "csv":
        data = write_csv(tmp_path / "d" / "train.csv", [["label", "title", "text"]] + rows, classes=False)
        extra = ["--text-field", "title", "--text-field", "text"]
    else:
        data = tmp_path / "train.jsonl"
        with open(data, "w", encoding="utf-8") as fh:
            for label, title, text in rows:
                fh.write(json.dumps({"text": f"{title} {text}", "label": label}) + "\n")
        extra = []
    runs = tmp_path / "runs"
    result = cli("train", "--data", f"{kind}:{data}", *extra, "--runs-root", runs)
    assert_one_line_error(
        result,
        "line 5" if kind == "csv" else "line 4",
        "longer than 40,777,216 characters",  # refused as it is read: the line is past what any text takes
        "the limit of 2,000,000",
        "--max-text-chars",
    )
    assert not runs.exists()  # refused while reading: no run directory
    # the option raises the limit (here only to show it is the one read: the text is then taken)
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n"
                             for lab, t in [("a", "x " * 40), ("b", "y z"), ("a", "x w"), ("b", "y y")] * 3))
    assert_one_line_error(cli("train", "--data", f"jsonl:{small}", "--max-text-chars", 50, "--runs-root", runs),
                          "longer than the limit of 50")


def test_texts_of_200k_words_train_the_default_to_a_complete_run(tmp_path):
    rng = random.Random(3)
    rows = []
    for i in range(6):
        label = 1 + i % 2
        vocab = WORDS[label]
        rows.append([str(label), "long", " ".join(rng.choice(vocab + ["the", "of"]) for _ in range(200_000))])
    rows += ag_rows(6, seed=1)
    data = write_csv(tmp_path / "d" / "train.csv", rows)
    runs = tmp_path / "runs"
    result = cli("train", "--data", f"csv:{data}", "--runs-root", runs)
    assert result.exit_code == 0, result.output
    metrics = json.loads((runs / "latest" / "metrics.json").read_text())
    assert metrics["solver"] == "liblinear" and metrics["accuracy"] > 0.5
    evaluated = cli("evaluate", "--json", "--runs-root", runs)
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["accuracy"] == metrics["accuracy"]
    long_text = " ".join(rng.choice(WORDS[2]) for _ in range(200_000))
    predicted = cli("predict", "--json", "--runs-root", runs, long_text)
    assert predicted.exit_code == 0 and json.loads(predicted.stdout)["label"] == "Sports"
    too_long = cli("predict", "--runs-root", runs, "x" * 2_000_001)
    assert_one_line_error(too_long, "text 1 has 2,000,001 characters", "--max-text-chars")
