"""Bags of n-grams without TensorFlow: the n-gram keys, vocabulary and TF-IDF rows of models/ngram/model.py in numpy.

The same features as the Keras layers `NgramKeys` -> `NgramIds` -> `TfidfBag`, key for key
(tests/models/test_ngram_features.py compares them on fuzzed texts): words hashed by FarmHash's
Fingerprint64 (the `cityhash` package's binding, what `tf.strings.to_hash_bucket_fast` computes),
character n-grams from code points, both mixed and tagged exactly as the TensorFlow ops do. So the
default model trains, evaluates and predicts with numpy, scipy and scikit-learn alone — no
TensorFlow import (≈ 2.3-5 s and 600 MB before any work) — and its Keras twin, built when a
command needs one (export), gives the same probabilities.

Memory is bounded by the work: texts are processed in chunks of at most `CHUNK_CHARS`
characters (one text longer than that is a chunk of its own, and costs in proportion to its
length); nothing is padded to the longest text.
"""

from __future__ import annotations

import ctypes
from itertools import chain, repeat
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np

from textclf.textrules import PUNCTUATION, ascii_split, lower_like_tensorflow, punctuation_to_spaces  # noqa: F401

HASH_BITS = 56  # an n-gram's key: its kind (word n, or character n + 8) in the bits above these
MULTIPLIER = 0x9E3779B97F4A7C15 - (1 << 64)  # odd 64-bit constant (as int64) for mixing
WORD_BUCKETS = 1 << 62  # words hash to Fingerprint64 % 2^62 (tf.strings.to_hash_bucket_fast)
CHUNK_CHARS = 1 << 19  # characters of text featurized at once (two chunks at a time): ~100 MB of temporaries each

_MULT = np.int64(MULTIPLIER)


def is_char_key(keys: np.ndarray) -> np.ndarray:
    """Whether each n-gram key is a character n-gram (its kind bits are above 8)."""
    return (keys >> HASH_BITS) > 8


def gram_keys(values: np.ndarray, group: np.ndarray, longest: int, shortest: int, kind_offset: int,
              known: np.ndarray | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """(keys, start) of every run of shortest..longest consecutive `values` within one group (int64
    arithmetic wraps as TensorFlow's does); with `known`, only runs of known values.

    `values` are int64 word hashes or code points, flat; `group` (sorted) says which text or word
    each belongs to: a run never crosses groups. models/ngram/model.py's `_gram_keys` is the same in TF.
    """
    found = []
    h = values
    ok = known
    with np.errstate(over="ignore"):
        for width in range(1, longest + 1):
            if width > 1:
                h = ((h[:-1] * _MULT) ^ values[width - 1:]) + (h[:-1] >> np.int64(29))
                if ok is not None:
                    ok = ok[:-1] & known[width - 1:]
            if width >= shortest:
                inside = group[: len(h)] == group[width - 1:]
                if ok is not None:
                    inside &= ok
                key = (h & np.int64((1 << HASH_BITS) - 1)) | np.int64((width + kind_offset) << HASH_BITS)
                found.append((key[inside], np.flatnonzero(inside)))
    return found


def fingerprints(words: Sequence[str]) -> np.ndarray:
    """FarmHash Fingerprint64 of each word's UTF-8 bytes, modulo 2^62 (tf.strings.to_hash_bucket_fast)."""
    from farmhash import Fingerprint64

    return np.fromiter((Fingerprint64(w.encode("utf-8", "surrogatepass")) % WORD_BUCKETS for w in words),
                       np.int64, len(words))


class WordHashes:
    """Word -> hash, each distinct word hashed once (a dict in front of Fingerprint64)."""

    def __init__(self, known: dict[str, int] | None = None) -> None:
        self.table: dict[str, int] = dict(known or {})

    def __call__(self, words: list[str]) -> np.ndarray:
        table = self.table
        new = [w for w in set(words) if w not in table]
        if new:
            table.update(zip(new, fingerprints(new).tolist()))
        return np.fromiter(map(table.__getitem__, words), np.int64, len(words))


_MARK = "\x01"  # joins the texts of a chunk (" \x01 ": a token of its own) when no text holds it
_SEP = f" {_MARK} "


def _split(texts: Sequence[str], char_ngrams: int):
    """The chunk's words (punctuation split off) and each one's text, and when `char_ngrams`, its
    whitespace-separated tokens (punctuation kept: character n-grams are made inside them) and each
    one's text.

    The texts are lower-cased and split as one string joined by a marker token (a few C calls instead
    of a few per text); a chunk with a NUL (where TensorFlow's lower-casing ends a text) or the marker
    itself goes text by text.
    """
    if any("\x00" in t or _MARK in t for t in texts):
        lowered = [lower_like_tensorflow(t) for t in texts]
        words, word_rows = _flatten([ascii_split(punctuation_to_spaces(t)) for t in lowered])
        tokens = _flatten([ascii_split(t) for t in lowered]) if char_ngrams else None
    else:
        joined = lower_like_tensorflow(_SEP.join(texts))
        words, word_rows = _split_marks(ascii_split(punctuation_to_spaces(joined)))
        tokens = _split_marks(ascii_split(joined)) if char_ngrams else None
    return words, word_rows, tokens


def _word_keys(words: list[str], word_rows: np.ndarray, ngrams: int, hashes: WordHashes,
               only_known_words: bool) -> tuple[np.ndarray, np.ndarray]:
    """(key, text) of every word 1..`ngrams`-gram (words missing from `hashes` end every n-gram when
    `only_known_words`, else every new word is hashed)."""
    if only_known_words:
        table = hashes.table
        values = np.fromiter(map(table.get, words, repeat(-1)), np.int64, len(words))
        known = values >= 0
    else:
        known, values = None, hashes(words)
    found = [(k, word_rows[s]) for k, s in gram_keys(values, word_rows, ngrams, 1, 0, known)]
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([k for k, _ in found]), np.concatenate([r for _, r in found])


def _distinct(tokens: list[str]) -> tuple[list[str], np.ndarray]:
    """The distinct tokens and each token's place among them."""
    table = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    return list(table), np.fromiter(map(table.__getitem__, tokens), np.int64, len(tokens))


def token_char_keys(tokens: list[str], char_ngrams: int) -> tuple[np.ndarray, np.ndarray]:
    """(key, token) of every character 2..`char_ngrams`-gram inside each token padded with a space
    (scikit-learn's char_wb, `NgramKeys`' character n-grams), code points as TensorFlow reads them."""
    if not tokens:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    joined = " " + "  ".join(tokens) + " "
    chars = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
    del joined
    lengths = np.fromiter(map(len, tokens), np.int64, len(tokens)) + 2
    owner = np.repeat(np.arange(len(tokens), dtype=np.int64), lengths)
    found = gram_keys(chars, owner, char_ngrams, 2, 8)
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate([k for k, _ in found]), np.concatenate([owner[s] for _, s in found])


def _char_counts(tokens: list[str], token_rows: np.ndarray, n: int, char_ngrams: int, vocab: "Vocabulary | None"):
    """The texts' character n-gram counts as CSR rows (n × columns, int32) and the columns' keys.

    A character n-gram never crosses a token, so a text's character n-grams are the sum of its tokens'
    ones: they are made once per distinct token of the chunk (on ag7600-long, a fifth of the tokens;
    a few characters each instead of every character of every text), and the counts are the sparse
    product (text × token counts) @ (token × n-gram counts). With `vocab`, the columns are its ids
    (n-grams outside it dropped) and the keys None; else the columns are the chunk's distinct keys
    (sorted), returned with them.
    """
    import scipy.sparse

    distinct, token_ids = _distinct(tokens)
    keys, owner = token_char_keys(distinct, char_ngrams)
    if vocab is None:
        columns, cols = np.unique(keys, return_inverse=True)
        width = len(columns)
    else:
        cols, columns, width = _ids(keys, vocab), None, vocab.width
        hit = cols >= 0
        cols, owner = cols[hit], owner[hit]
    del keys
    # CSR made directly (a repeated column within a row is fine for the product): scipy's (data, (i, j))
    # constructor would sort every row's columns first.
    order = np.argsort(owner, kind="stable")
    grams = scipy.sparse.csr_matrix((np.ones(len(cols), np.int32), cols[order].astype(np.int32),
                                     _indptr(owner, len(distinct))), shape=(len(distinct), width))
    del order, cols, owner
    texts = scipy.sparse.csr_matrix((np.ones(len(token_ids), np.int32), token_ids.astype(np.int32),
                                     _indptr(token_rows, n)), shape=(n, len(distinct)))
    return texts @ grams, columns  # each (text, column) once, columns unsorted


def _indptr(rows: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=n))]).astype(np.int64)


def text_keys(texts: Sequence[str], ngrams: int, char_ngrams: int, hashes: WordHashes,
              only_known_words: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(keys, row) of every word 1..`ngrams`-gram and character 2..`char_ngrams`-gram of `texts`, each
    occurrence, as `NgramKeys` makes them (the features count them per distinct token instead:
    `_char_counts`; tests compare both with TensorFlow's)."""
    words, word_rows, tokens = _split(texts, char_ngrams)
    keys, rows = _word_keys(words, word_rows, ngrams, hashes, only_known_words)
    if tokens is not None:
        distinct, token_ids = _distinct(tokens[0])
        char_keys, owner = token_char_keys(distinct, char_ngrams)
        starts = np.zeros(len(distinct) + 1, np.int64)
        np.add.at(starts, owner + 1, 1)
        starts = np.cumsum(starts)
        order = np.argsort(owner, kind="stable")
        per_token = [char_keys[order[starts[t]:starts[t + 1]]] for t in range(len(distinct))]
        occurrences = [per_token[t] for t in token_ids]
        if occurrences:
            keys = np.concatenate([keys, *occurrences])
            rows = np.concatenate([rows, np.repeat(tokens[1], [len(o) for o in occurrences])])
    return keys, rows


def _flatten(per_text: list[list[str]]) -> tuple[list[str], np.ndarray]:
    """Each text's tokens as one list, and each token's text."""
    counts = np.fromiter(map(len, per_text), np.int64, len(per_text))
    return [t for tokens in per_text for t in tokens], np.repeat(np.arange(len(per_text), dtype=np.int64), counts)


def _split_marks(tokens: list[str]) -> tuple[list[str], np.ndarray]:
    """Tokens without the markers, and each one's text (the markers before it)."""
    marks = []
    at = -1
    try:
        while True:  # list.index: a C loop (the marker, one character, is the same object each time)
            at = tokens.index(_MARK, at + 1)
            marks.append(at)
    except ValueError:
        pass
    bounds = [-1, *marks, len(tokens)]
    sizes = np.diff(np.asarray(bounds, np.int64)) - 1
    rows = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    if marks:
        tokens = list(chain.from_iterable(tokens[a + 1:b] for a, b in zip(bounds, bounds[1:])))
    return tokens, rows


def lean_allocator() -> None:
    """Arrays of 4 MB or more in mappings of their own, returned to the system when freed (glibc's
    mallopt; a no-op elsewhere). glibc raises that threshold after each freed mapping, up to 32 MB,
    so the chunks' temporaries ended up on the heap, where freed memory stays with the process:
    ag7600-long's features peaked at 824 MB instead of 751."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-3, 4 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        pass


def give_back_memory() -> None:
    """Return the heap's freed memory to the system (glibc's malloc_trim; a no-op elsewhere): after the
    features, ~420 MB on ag7600-long, before the solver's copy of the rows is made."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def chunks(texts: Sequence[str], budget: int = CHUNK_CHARS) -> Iterator[tuple[int, int]]:
    """(start, stop) ranges of `texts` holding at most `budget` characters each (a longer text alone)."""
    start, size = 0, 0
    for i, text in enumerate(texts):
        n = len(text)
        if i > start and size + n > budget:
            yield start, i
            start, size = i, 0
        size += n
    if start < len(texts):
        yield start, len(texts)


@dataclass
class Vocabulary:
    """The kept n-gram keys (sorted), their idf and where the character n-grams start among the ids.

    Id 0 pads and id 1 is any n-gram outside the vocabulary (as `NgramIds` numbers them); kept
    n-gram i has id i + 2. `hashes` holds every training word's hash (an n-gram of other words is
    in no kept n-gram).
    """

    keys: np.ndarray
    idf: np.ndarray  # per id (0 and 1 weigh 0), float32
    char_start: int  # ids from here on are character n-grams
    ngrams: int
    char_ngrams: int
    hashes: WordHashes

    @property
    def width(self) -> int:
        return len(self.keys) + 2


# Distinct (text, n-gram) pairs of the training texts kept between counting and weighing (12 bytes
# each: 400 MB at most), else the n-grams are made a second time (on ag7600-long, 24M pairs: 17 s
# of features instead of 9).
CACHE_KEYS = 1 << 25


def fit_vocabulary(texts: Sequence[str], *, ngrams: int, char_ngrams: int, min_df: int, max_tokens: int,
                   char_min_df: int, char_max_tokens: int, budget: int = CHUNK_CHARS, progress=None):
    """The vocabulary of `texts` and their TF-IDF rows (`tfidf_rows`), the n-grams made once when they fit
    in `CACHE_KEYS`.

    Counts the document frequency of every n-gram, chunk by chunk, and keeps word n-grams in at least
    `min_df` texts (the most frequent `max_tokens`, 0: all) and character n-grams in at least
    `char_min_df` (`char_max_tokens`); by falling document frequency, ties by key. When nothing passes
    (e.g. every n-gram occurs once and min_df is 2), every n-gram is kept rather than none.
    Raises ValueError when the texts have no n-gram at all. `progress(characters counted, total)` is
    called after each chunk.
    """
    hashes = WordHashes()
    found: list[tuple[np.ndarray, np.ndarray]] = []  # per chunk: distinct keys and their document frequency
    cached: list | None = []
    held = done = 0
    total = sum(map(len, texts)) if progress is not None else 0
    if progress is not None:
        progress(0, total)  # the clock of the estimate starts now, not after the first chunk
    count = lambda span: (*span, *_chunk_counts(texts[span[0]:span[1]], ngrams, char_ngrams, hashes))  # noqa: E731
    for start, stop, unique, df, pairs in _in_parallel(count, chunks(texts, budget)):
        found.append((unique, df))
        if progress is not None:
            done += sum(map(len, texts[start:stop]))
            progress(done, total)
        if len(found) > 8:
            found = [_merge(found)]
        held += len(pairs[0])
        if cached is not None and held <= CACHE_KEYS:
            cached.append((stop - start, unique, *pairs))
        else:
            cached = None
    unique, df = _merge(found) if found else (np.zeros(0, np.int64), np.zeros(0, np.int64))
    if not len(unique):
        raise ValueError("no n-grams")
    kept = _keep(unique, df, min_df, max_tokens, char_min_df, char_max_tokens)
    if not len(kept):
        kept = _keep(unique, df, 1, max_tokens, 1, char_max_tokens)
    idf = np.concatenate([[0.0, 0.0], smoothed_idf(df[kept], len(texts))]).astype(np.float32)
    vocab = Vocabulary(unique[kept], idf, 2 + int(np.sum(~is_char_key(unique[kept]))), ngrams, char_ngrams, hashes)
    del unique, df
    if cached is None:
        return vocab, tfidf_rows(texts, vocab, budget)
    def weigh(i):  # chunk i's rows, its pairs freed once they are made
        n, chunk_keys, rows, group, counts = cached[i]
        cached[i] = None
        ids = _ids(chunk_keys, vocab)[group]  # each distinct (text, n-gram)'s id, -1 when not kept
        hit = ids >= 0
        return _csr(rows[hit], ids[hit], counts[hit], n, vocab)

    return vocab, _stack(list(_in_threads(weigh, range(len(cached)))), vocab)


def _ids(keys: np.ndarray, vocab: "Vocabulary") -> np.ndarray:
    """Each key's id in the vocabulary (its place among the kept keys + 2), -1 when it is not kept."""
    if not len(vocab.keys):
        return np.full(len(keys), -1, np.int64)
    place = np.searchsorted(vocab.keys, keys)
    hit = vocab.keys[np.minimum(place, len(vocab.keys) - 1)] == keys
    return np.where(hit, place + 2, -1)


def _chunk_counts(texts: Sequence[str], ngrams: int, char_ngrams: int, hashes: WordHashes):
    """The chunk's distinct n-gram keys (sorted), each one's document frequency, and each distinct (text,
    n-gram) pair: (its text, its n-gram as an index into the keys, its count)."""
    words, word_rows, tokens = _split(texts, char_ngrams)
    keys, rows = _word_keys(words, word_rows, ngrams, hashes, False)
    del words, word_rows
    # By key, stably: a key's rows stay in text order (each n-gram length's keys are made in text
    # order, and the length is part of the key), so a repeat within a text is adjacent.
    order = np.argsort(keys, kind="stable")
    keys, rows = keys[order], rows[order]
    del order
    new_key = np.ones(len(keys), bool)
    new_key[1:] = keys[1:] != keys[:-1]
    new_pair = new_key.copy()
    new_pair[1:] |= rows[1:] != rows[:-1]
    key_starts, pair_starts = np.flatnonzero(new_key), np.flatnonzero(new_pair)
    df = np.add.reduceat(new_pair.astype(np.int64), key_starts) if len(key_starts) else np.zeros(0, np.int64)
    group = (np.cumsum(new_key) - 1)[pair_starts].astype(np.int32)
    counts = np.diff(np.append(pair_starts, len(keys))).astype(np.int32)
    unique, pairs = keys[key_starts], (rows[pair_starts].astype(np.int32), group, counts)
    del keys, rows
    if tokens is None:
        return unique, df, pairs
    # Character keys are above every word key (their kind bits), so the chunk's keys stay sorted.
    chars, char_keys = _char_counts(*tokens, len(texts), char_ngrams, None)
    del tokens
    char_rows = np.repeat(np.arange(len(texts), dtype=np.int32), np.diff(chars.indptr))
    char_df = np.bincount(chars.indices, minlength=len(char_keys))
    return (np.concatenate([unique, char_keys]), np.concatenate([df, char_df]),
            tuple(np.concatenate(p) for p in zip(pairs, (char_rows, (chars.indices + len(unique)).astype(np.int32),
                                                         chars.data.astype(np.int32)))))




def _in_parallel(work, spans) -> Iterator:
    """work(span) for each (start, stop) span of texts, in order, two at a time on threads (numpy's sorts
    and scipy's products release the GIL), or here when there is one span.

    Measured against forked processes (textclf.processes) on this 2-core machine: SST-2's counting
    1.88 s on one thread, 1.88 s on two, 2.46 s in two processes (139 MB of results pickled back, and
    the children's copy-on-write faults); ag7600-long 5.58 / 3.70 / 5.03 s. So threads."""
    spans = list(spans)
    return map(work, spans) if len(spans) < 2 else _in_threads(work, spans)


def _in_threads(work, items) -> Iterator:
    """work(item) for each item, in order, two at a time: numpy's sorts and searches run without the
    GIL, so chunks overlap on two cores (at most two chunks in memory at once)."""
    from concurrent.futures import ThreadPoolExecutor
    from itertools import islice

    items = iter(items)
    with ThreadPoolExecutor(max_workers=2) as pool:
        pending = [pool.submit(work, item) for item in islice(items, 2)]
        while pending:
            done = pending.pop(0).result()
            nxt = next(items, None)
            if nxt is not None:
                pending.append(pool.submit(work, nxt))
            yield done


def _merge(found: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Per-chunk (keys, counts) as one: the distinct keys, sorted, with their counts summed."""
    keys = np.concatenate([k for k, _ in found])
    counts = np.concatenate([c for _, c in found])
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    new = np.ones(len(keys), bool)
    new[1:] = keys[1:] != keys[:-1]
    starts = np.flatnonzero(new)
    return keys[starts], (np.add.reduceat(counts, starts) if len(starts) else counts[:0])


def _keep(keys, df, min_df, max_tokens, char_min_df, char_max_tokens) -> np.ndarray:
    order = np.lexsort((keys, -df))
    char = is_char_key(keys)
    kept = []
    for part, least, most in ((~char, min_df, max_tokens), (char, char_min_df, char_max_tokens)):
        chosen = order[part[order] & (df[order] >= least)]
        kept.append(chosen[:most] if most else chosen)
    return np.sort(np.concatenate(kept))  # in key order: ids are places among sorted keys


def smoothed_idf(df: np.ndarray, n_docs: int) -> np.ndarray:
    """ln((1 + n) / (1 + df)) + 1, scikit-learn's smooth_idf: a word in every text still counts a little."""
    return (np.log((1.0 + n_docs) / (1.0 + df)) + 1.0).astype(np.float32)


def tfidf_rows(texts: Sequence[str], vocab: Vocabulary, budget: int = CHUNK_CHARS):
    """The texts' TF-IDF rows as a scipy CSR matrix (float32, n × vocab.width): sublinear tf × idf of
    the known n-grams, words and characters each L2-normalised (`TfidfBag`); chunk by chunk."""
    def rows_of(span):
        return _rows_of(texts[span[0]:span[1]], vocab)

    spans = list(chunks(texts, budget))
    return _stack([rows_of(span) for span in spans] if len(spans) < 2 else list(_in_parallel(rows_of, spans)), vocab)


def _stack(parts: list, vocab: Vocabulary):
    """The chunks' CSR rows as one matrix, each chunk freed once copied (scipy's vstack would hold all the
    chunks and the result at once: twice the rows' memory)."""
    import scipy.sparse

    if not parts:
        return scipy.sparse.csr_matrix((0, vocab.width), dtype=np.float32)
    if len(parts) == 1:
        return parts[0]
    nnz, n = sum(p.nnz for p in parts), sum(p.shape[0] for p in parts)
    data, indices = np.empty(nnz, np.float32), np.empty(nnz, np.int32)
    indptr = np.zeros(n + 1, np.int64)
    at = row = 0
    while parts:
        part = parts.pop(0)
        data[at:at + part.nnz], indices[at:at + part.nnz] = part.data, part.indices
        indptr[row + 1:row + part.shape[0] + 1] = part.indptr[1:] + at
        at, row = at + part.nnz, row + part.shape[0]
        del part
    stacked = scipy.sparse.csr_matrix((data, indices, indptr), shape=(n, vocab.width))
    stacked.has_sorted_indices = True  # each part's are (sum_duplicates): no one need sort them again
    return stacked


def _rows_of(texts: Sequence[str], vocab: Vocabulary):
    """The texts' CSR rows (n × vocab.width): each known n-gram's count, weighed."""
    n = len(texts)
    words, word_rows, tokens = _split(texts, vocab.char_ngrams)
    keys, rows = _word_keys(words, word_rows, vocab.ngrams, vocab.hashes, True)
    del words, word_rows
    ids = _ids(keys, vocab)
    hit = ids >= 0
    rows, cols, counts = rows[hit], ids[hit], np.ones(int(hit.sum()), np.int32)
    if tokens is not None:
        chars, _ = _char_counts(*tokens, n, vocab.char_ngrams, vocab)
        rows = np.concatenate([rows, np.repeat(np.arange(n, dtype=np.int64), np.diff(chars.indptr))])
        cols, counts = np.concatenate([cols, chars.indices]), np.concatenate([counts, chars.data.astype(np.int32)])
    return _csr(rows, cols, counts, n, vocab)


def _csr(rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, n: int, vocab: Vocabulary):
    """The TF-IDF rows of (text, id, count) triples (a pair may repeat: counts are summed): sublinear tf
    × idf, words and characters each L2-normalised (`TfidfBag`)."""
    import scipy.sparse

    m = scipy.sparse.csr_matrix((counts.astype(np.float32), (rows, cols)), shape=(n, vocab.width))
    m.sum_duplicates()  # sorted columns within each row, repeated (text, id) pairs summed
    cols = m.indices
    weights = (np.float32(1.0) + np.log(m.data)) * vocab.idf[cols]
    row_of = np.repeat(np.arange(n, dtype=np.int64), np.diff(m.indptr))
    part = row_of * 2 + (cols >= vocab.char_start)
    norms = np.sqrt(np.bincount(part, weights=weights.astype(np.float64) ** 2, minlength=2 * n)).astype(np.float32)
    m.data = (weights / norms[part]).astype(np.float32)
    return m
