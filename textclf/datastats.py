"""`textclf data stats`: look at a data set before training on it (no TensorFlow).

Counts and shares per class, text lengths in words (whitespace) and in tokens (the
transformer's tokenization: ASCII lower-case, ASCII punctuation removed, whitespace split),
duplicate texts (and duplicates with different labels), texts present in both the training
and the eval data (leakage), very long texts, and the samples / median-words ratio with the
model `--model auto` would choose.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from textclf.textrules import vectorizer_tokens as tokens  # the transformer's tokens

LONG_TOKENS = 512  # longer than this, the transformer and BERT cut the text
EXAMPLES = 5  # how many texts each finding quotes


def _lengths(values: Sequence[int]) -> dict[str, Any]:
    x = np.asarray(values, dtype=np.int64)
    if not len(x):
        return {}
    p = np.percentile(x, [50, 90, 99])
    return {"min": int(x.min()), "mean": round(float(x.mean()), 1), "median": float(p[0]), "p90": float(p[1]),
            "p99": float(p[2]), "max": int(x.max())}


def normal_text(text: str) -> str:
    """A text as duplicates are found: whitespace collapsed, lower-cased."""
    return " ".join(str(text).split()).lower()


def describe(train, evaluation=None) -> dict[str, Any]:
    """Statistics of `train` (an Examples) and, with `evaluation`, the overlap between them."""
    from textclf.selection import choose_model, text_stats

    names = train.label_names
    counts = train.class_counts()
    words = [len(str(t).split()) for t in train.texts]
    toks = [len(tokens(str(t))) for t in train.texts]
    by_text: dict[str, set[str]] = {}
    seen = Counter(normal_text(t) for t in train.texts)
    for text, label_set in zip(train.texts, train.label_sets()):
        by_text.setdefault(normal_text(text), set()).add("|".join(label_set))
    duplicated = [t for t, n in seen.items() if n > 1]
    conflicting = [t for t in duplicated if len(by_text[t]) > 1]
    result: dict[str, Any] = {
        "data": train.source, "examples": len(train), "classes": [
            {"label": name, "count": int(n), "share": float(n / max(len(train), 1))} for name, n in zip(names, counts)],
        "multilabel": train.multilabel,
        **({"labels_per_example": _lengths(train.labels.sum(axis=1).tolist())} if train.multilabel else {}),
        "imbalance": float(counts.max() / max(counts[counts > 0].min(), 1)) if counts.any() else None,
        "words": _lengths(words), "tokens": _lengths(toks),
        "long_texts": {"over_tokens": LONG_TOKENS, "count": int(sum(n > LONG_TOKENS for n in toks))},
        "duplicates": {"texts": len(duplicated), "extra_copies": int(sum(seen[t] - 1 for t in duplicated)),
                       "with_different_labels": len(conflicting), "examples": duplicated[:EXAMPLES]},
        "auto": choose_model(text_stats(train.texts)),
    }
    from textclf.data.phrases import phrase_groups

    groups = phrase_groups(train.texts)
    if groups is not None:  # phrase data: splits move each sentence with its phrases
        inside = sum(len(str(train.texts[i]).split()) < len(str(train.texts[g]).split()) for i, g in enumerate(groups))
        result["phrases"] = {"sentences": int(len(np.unique(groups))), "texts_in_a_longer_text": int(inside)}
    if evaluation is not None:
        eval_texts = Counter(normal_text(t) for t in evaluation.texts)
        shared = [t for t in eval_texts if t in seen]
        result["eval"] = {"data": evaluation.source, "examples": len(evaluation),
                          "classes": [{"label": name, "count": int(n)} for name, n in
                                      zip(evaluation.label_names, evaluation.class_counts())]}
        result["leakage"] = {"texts_in_both": len(shared),
                             "eval_examples_seen_in_training": int(sum(eval_texts[t] for t in shared)),
                             "examples": shared[:EXAMPLES]}
    result["token_counts"] = toks  # for the histogram; dropped from --json output
    return result


def histogram_png(token_counts: Sequence[int], title: str) -> bytes:
    from textclf.reports import _png, _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = np.asarray(token_counts)
    ax.hist(x, bins=min(60, max(5, len(np.unique(x)))), color="#3b6ea8")
    ax.axvline(np.percentile(x, 99), color="#a83b3b", linestyle="--", label="99th percentile")
    ax.set_xlabel("tokens per text")
    ax.set_ylabel("texts")
    ax.set_title(title)
    ax.legend()
    return _png(fig)
