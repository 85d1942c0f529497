"""Text rules: how a text becomes tokens, the way TensorFlow's string ops do it, without TensorFlow.

The one owner of these rules. The n-gram features (textclf.models.ngram.features), the twins
(textclf.twins), `data stats` and the TFLite export's tokenizer description all use them, so a
token counted by `data stats`, hashed by the n-gram model and looked up by a twin is the same
token the Keras model sees. tests/test_twins.py and tests/models/test_ngram_features.py compare them with
TensorFlow's ops on fuzzed text.
"""

from __future__ import annotations

import re

# tf_keras TextVectorization's punctuation (its DEFAULT_STRIP_REGEX): ASCII punctuation only.
PUNCTUATION = r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']'

# Letters Python's str.lower changes and TensorFlow 2.20's ICU keeps (newer than Unicode 13);
# tests/test_twins.py checks this list against tf.strings.lower over every code point.
LOWER_KEPT = frozenset([0x2C2F, 0xA7C0, 0xA7D0, 0xA7D6, 0xA7D8, *range(0x10570, 0x1057B), *range(0x1057C, 0x1058B),
                        *range(0x1058C, 0x10593), 0x10594, 0x10595])
_KEPT = re.compile("([" + "".join(map(chr, sorted(LOWER_KEPT))) + "])")
_ASCII_SPACE = re.compile(r"[\t\n\v\f\r ]+")  # tf.strings.split's whitespace (not U+00A0 and friends)
_PUNCT = re.compile(PUNCTUATION)
_CONTROL_SPACE = re.compile("[\x1c-\x1f]")  # ASCII characters str.split splits at and TensorFlow does not
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")

# Keras' TextVectorization (lower_and_strip_punctuation, whitespace), exactly: what an app must
# do before looking tokens up in vocab.txt. Checked by the test vectors written with each export.
TOKENIZER_RULES = [
    "lower-case ASCII letters only (A-Z -> a-z); other letters, e.g. 'É', are kept as they are",
    "delete every character of !\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~' (ASCII punctuation; other punctuation is kept)",
    "split on runs of ASCII whitespace (space, \\t, \\n, \\r, \\v, \\f); other spaces such as U+00A0 "
    "(no-break space) are part of a token",
    "look each token up in vocab.txt (unknown: id 1), keep the first max_length ids",
]


def nul_as_space(text: str) -> str:
    """A NUL in a text read as a space, where every text enters (data files, predict, serve): TensorFlow's
    lower-casing, and so every model's, ends a text at its first NUL, so "Stocks\0Federer wins" was
    classified as "Stocks"."""
    return text.replace("\x00", " ") if "\x00" in text else text


def lower_like_tensorflow(text: str) -> str:
    """`tf.strings.lower(text, encoding="utf-8")` without TensorFlow (the n-gram models' lower-casing)."""
    text = text.split("\x00", 1)[0]
    if text.isascii() or not _KEPT.search(text):
        return text.lower()
    return "".join(part if i % 2 else part.lower() for i, part in enumerate(_KEPT.split(text)))


def ascii_split(text: str) -> list[str]:
    """`text` split at ASCII whitespace, as tf.strings.split (str.split's C loop when that is all it would
    split at)."""
    if text.isascii() and not _CONTROL_SPACE.search(text):
        return text.split()
    return [w for w in _ASCII_SPACE.split(text) if w]


def punctuation_to_spaces(text: str) -> str:
    """The n-gram models' word boundaries: punctuation replaced by a space (as in scikit-learn's token
    pattern) rather than deleted: "New York-based" -> new, york, based."""
    return _PUNCT.sub(" ", text)


def vectorizer_tokens(text: str, punctuation: re.Pattern | None = None) -> list[str]:
    """TextVectorization's tokens (the transformer's): ASCII letters lower-cased, `punctuation` (default:
    PUNCTUATION) deleted, split at ASCII whitespace."""
    return ascii_split((punctuation or _PUNCT).sub("", text.translate(_ASCII_LOWER)))
