"""Knowledge distillation: a student run trained on a teacher run's probabilities (soft targets).

A run whose config has `distill.teacher` is a student (`textclf distill TEACHER --student MODEL`):

- its data are the teacher's (the same training and eval parts: `data.split_seed` is the teacher's
  seed), so its eval number compares with the teacher's and no eval text is ever a transfer text;
- its transfer set is the training texts it fits on, plus unlabeled texts from any data spec
  (`distill.unlabeled`, labels ignored), plus augmented copies of the training texts when the set is
  small (Tang et al. 2019, "Distilling task-specific knowledge from BERT into simple neural networks":
  word masking, substitution by a word of the training vocabulary, n-gram sampling), at most
  `distill.budget` texts; the augmentation is a function of the split's seed (the teacher's: students
  that differ in their own seed but fit on the same texts — no validation part of their own — share one
  transfer set, answered by the teacher once) and the text's position alone;
- the teacher's probabilities for the transfer set are computed once, batched (the teacher's twin
  when it has one), and kept in the student's run (teacher.npz, with a digest of each text): a resume
  or a rerun over the same texts reads them instead of running the teacher again;
- the student fits `distillation_loss`: on texts with a gold label, alpha × the task's loss on the gold
  label + (1 − alpha) × T² × KL(teacher_T ‖ student_T) (Hinton et al. 2015; per label with sigmoids
  for multi-label data); on texts without one, the soft term alone. Targets travel packed as
  [teacher probabilities | gold | has gold] rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Callable

import numpy as np

from textclf.errors import ConfigError, DataError, RunError, TextclfError

EPS = 1e-7
AUGMENT_TARGET = 20_000  # with distill.augment -1 (auto): augmented copies until the set reaches this many texts
MAX_AUTO_AUGMENT = 4  # ... with at most this many copies of each training text
P_MASK, P_SUBSTITUTE, P_NGRAM, MAX_NGRAM = 0.1, 0.1, 0.25, 5  # Tang et al.'s p_mask, p_pos, p_ng and n-gram lengths
# A masked word: a character no training text holds and no tokenizer strips (the students learn it as
# Tang et al.'s [MASK]; "[mask]" would become the word "mask").
MASK = "\u2047"


# --- the transfer set ------------------------------------------------------------------------------

def augment_count(distill, labelled: int, unlabeled: int) -> int:
    """Augmented copies per training text: distill.augment, or (-1, auto) enough to bring a small set to
    AUGMENT_TARGET texts, at most MAX_AUTO_AUGMENT."""
    if distill.augment >= 0:
        return distill.augment
    have = labelled + unlabeled
    if have >= AUGMENT_TARGET or labelled == 0:
        return 0
    return int(min(MAX_AUTO_AUGMENT, -(-(AUGMENT_TARGET - have) // labelled)))


def augment(texts, copies: int, seed: int, vocabulary: list[str] | None = None, limit: int | None = None) -> list[str]:
    """`copies` augmented versions of each text (Tang et al.'s rules), text by text: every word is masked
    with P_MASK, else replaced by a random word of `vocabulary` (default: the texts' words) with
    P_SUBSTITUTE; then, with P_NGRAM, an n-gram of 1-5 words is sampled from the result. Deterministic per
    (seed, text position, copy); at most `limit` texts are made."""
    if copies <= 0:
        return []
    words_of = [str(t).split() for t in texts]
    vocab = vocabulary if vocabulary is not None else sorted({w for words in words_of for w in words})
    out = []
    for copy in range(copies):
        for i, words in enumerate(words_of):
            if limit is not None and len(out) >= limit:
                return out
            rng = np.random.default_rng([seed, i, copy])
            out.append(" ".join(_augmented(words, rng, vocab)) or str(texts[i]))
    return out


def _augmented(words: list[str], rng, vocab: list[str]) -> list[str]:
    draws = rng.random(len(words))
    picks = rng.integers(0, max(len(vocab), 1), len(words))
    new = [MASK if d < P_MASK else (vocab[p] if d < P_MASK + P_SUBSTITUTE and vocab else w)
           for w, d, p in zip(words, draws, picks)]
    if len(new) > 1 and rng.random() < P_NGRAM:
        n = int(rng.integers(1, min(MAX_NGRAM, len(new)) + 1))
        start = int(rng.integers(0, len(new) - n + 1))
        new = new[start:start + n]
    return new


def transfer_texts(distill, fit_texts, seed: int, read_unlabeled: Callable[[str], list[str]],
                   held_out: Callable[[list], list] = lambda texts: texts) -> tuple[list, dict]:
    """The texts added to the training texts (unlabeled, then augmented), the added ones capped by the
    budget (the training texts are always all there), and a summary of the transfer set for the run's
    metrics. `held_out(texts)`: the unlabeled texts left once the eval and validation texts are dropped."""
    read = read_unlabeled(distill.unlabeled) if distill.unlabeled else []
    kept = held_out(read) if read else []
    room = max(distill.budget - len(fit_texts), 0)
    unlabeled = kept[:room]
    copies = augment_count(distill, len(fit_texts), len(unlabeled))
    augmented = augment(fit_texts, copies, seed, limit=max(room - len(unlabeled), 0))
    summary = {"labelled": len(fit_texts), "unlabeled": len(unlabeled), "unlabeled_dropped": len(read) - len(kept),
               "augmented": len(augmented), "augment_copies": copies,
               "total": len(fit_texts) + len(unlabeled) + len(augmented)}
    return unlabeled + augmented, summary


def read_texts(spec: str, data) -> list[str]:
    """The texts of a data spec, labels neither needed nor read: any spec `--data` takes, read with the teacher's
    data options (`data`: its text and label fields, tfds directory and text limit), a label column or field
    optional; or a plain text file (`PATH.txt` or `lines:PATH`), one text per line."""
    from textclf.data.sources import load_texts, parse_spec
    from textclf.textfiles import iter_lines
    from textclf.textrules import nul_as_space

    path, lines = spec.removeprefix("lines:"), spec.startswith("lines:")
    if not lines and spec.endswith(".txt"):  # notes.txt: one text a line; jsonl:notes.txt: JSONL
        try:
            parse_spec(spec)
        except DataError:
            lines = True
    if not lines:
        return load_texts(spec, text_fields=data.text_fields, label_field=data.label_field,
                          tfds_data_dir=data.tfds_data_dir, max_text_chars=data.max_text_chars)
    texts = []
    for n, line in enumerate(iter_lines(path, what="unlabeled text file", max_line_chars=data.max_text_chars + 1,
                                        why=f"more than a text may have ({data.max_text_chars:,}: "
                                            "data.max_text_chars)"), 1):
        line = nul_as_space(line.removesuffix("\r"))  # the read's bound allows the CR; the text's limit is exact
        if len(line) > data.max_text_chars:
            raise DataError(f"{path} line {n}: a text of {len(line):,} characters, longer than the "
                            f"limit of {data.max_text_chars:,} (data.max_text_chars)")
        if line.strip():
            texts.append(line)
    if not texts:
        raise DataError(f"{spec}: no texts (distill.unlabeled)")
    return texts


# --- the teacher's probabilities ------------------------------------------------------------------------

def digests(texts) -> np.ndarray:
    """A 16-byte digest per text (what the teacher cache is keyed by)."""
    return np.array([hashlib.blake2b(str(t).encode("utf-8", "surrogatepass"), digest_size=16).digest()
                     for t in texts], dtype="S16")


def teacher_probabilities(teacher: Callable[[], object], texts, cache: dict | None,
                          progress=None) -> tuple[np.ndarray, int]:
    """The teacher's probabilities of `texts` (its twin when it has one), reusing `cache` ({"digest",
    "probabilities"} arrays) for every text it holds: (probabilities, how many were computed). `teacher()`
    gives the teacher's run directory, asked for only when some text is not in the cache."""
    from textclf.prediction import Predictor

    keys = digests(texts)
    known = {bytes(k): i for i, k in enumerate(cache["digest"])} if cache is not None else {}
    width = cache["probabilities"].shape[1] if cache is not None and len(cache["probabilities"]) else 0
    missing = {}  # digest -> the first text with it (an augmented text may repeat another)
    for i, k in enumerate(keys):
        if bytes(k) not in known:
            missing.setdefault(bytes(k), i)
    found = cache["probabilities"] if cache is not None else np.zeros((0, width), np.float32)
    if missing:
        computed = Predictor(teacher(), use_twin=True).probabilities([texts[i] for i in missing.values()],
                                                                     progress=progress)
        width = computed.shape[1]
        known.update({k: len(found) + j for j, k in enumerate(missing)})
        found = np.concatenate([found.reshape(-1, width), computed]) if len(found) else computed
    probs = found[[known[bytes(k)] for k in keys]].astype(np.float32) if len(keys) else np.zeros((0, width))
    return probs, len(missing)


def pack_targets(teacher: np.ndarray, gold: np.ndarray | None, has_gold: np.ndarray) -> np.ndarray:
    """Rows [teacher probabilities (C) | gold (C: one-hot or multi-hot, 0 without gold) | has gold (1)]."""
    n, c = teacher.shape
    hot = np.zeros((n, c), np.float32)
    if gold is not None:
        if gold.ndim == 1:
            hot[np.arange(len(gold)), gold] = 1.0
        else:
            hot[: len(gold)] = gold
    hot[~has_gold] = 0.0
    return np.concatenate([teacher.astype(np.float32), hot, has_gold.astype(np.float32)[:, None]], axis=1)


# --- the student's loss -----------------------------------------------------------------------------------

def distillation_loss(num_classes: int, temperature: float, alpha: float, multilabel: bool):
    """A Keras loss on packed targets (pack_targets) and the student's probabilities (see the module doc)."""
    from textclf._tf import tf

    c, t = num_classes, float(temperature)

    def loss(y_true, y_pred):
        y_true = tf.cast(y_true, tf.float32)
        teacher, gold, has_gold = y_true[:, :c], y_true[:, c:2 * c], y_true[:, 2 * c]
        p = tf.clip_by_value(tf.cast(y_pred, tf.float32), EPS, 1 - EPS)
        q = tf.clip_by_value(teacher, EPS, 1 - EPS)
        if multilabel:
            logit = lambda x: tf.math.log(x) - tf.math.log1p(-x)  # noqa: E731
            qt, pt = tf.sigmoid(logit(q) / t), tf.clip_by_value(tf.sigmoid(logit(p) / t), EPS, 1 - EPS)
            soft = tf.reduce_mean(qt * (tf.math.log(qt) - tf.math.log(pt))
                                  + (1 - qt) * (tf.math.log1p(-qt) - tf.math.log1p(-pt)), axis=-1)
            hard = -tf.reduce_mean(gold * tf.math.log(p) + (1 - gold) * tf.math.log1p(-p), axis=-1)
        else:
            qt = tf.nn.softmax(tf.math.log(q) / t)
            log_pt = tf.nn.log_softmax(tf.math.log(p) / t)
            soft = tf.reduce_sum(qt * (tf.math.log(tf.clip_by_value(qt, EPS, 1.0)) - log_pt), axis=-1)
            hard = -tf.reduce_sum(gold * tf.math.log(p), axis=-1)
        soft = t * t * soft
        return has_gold * (alpha * hard + (1 - alpha) * soft) + (1 - has_gold) * soft

    return loss


def agreement_metric(num_classes: int, multilabel: bool):
    """Accuracy against the packed targets: the gold label where known, else the teacher's answer."""
    from textclf._tf import keras, tf

    c = num_classes

    def accuracy(y_true, y_pred):
        teacher, gold, has_gold = y_true[:, :c], y_true[:, c:2 * c], y_true[:, 2 * c:2 * c + 1]
        target = has_gold * gold + (1 - has_gold) * tf.cast(teacher >= (0.5 if multilabel else 0), tf.float32)
        if multilabel:
            return tf.reduce_mean(tf.cast(tf.equal(target, tf.cast(y_pred >= 0.5, tf.float32)), tf.float32), -1)
        chosen = tf.where(has_gold[:, 0] > 0, tf.argmax(gold, -1), tf.argmax(teacher, -1))
        return tf.cast(tf.equal(chosen, tf.argmax(y_pred, -1)), tf.float32)

    return keras.metrics.MeanMetricWrapper(accuracy, name="accuracy")


# --- the student's run ----------------------------------------------------------------------------------

def extend_fit(config, data, hooks):
    """`data` with the transfer set's added texts after the fit part's (their labels: none, yet) and its
    make-up in `transfer`."""
    from textclf.data.sources import Examples

    check_teacher(config, data.train.label_names, data.evaluation)
    fit = data.fit
    # The split's seed (the teacher's), not the student's: students of one teacher that differ in the seed share
    # their transfer set, so the teacher answers it once (its pass is most of a student's cost).
    from textclf.data.sources import split_seed

    extra, summary = transfer_texts(config.distill, list(fit.texts), split_seed(config.data, config.training.seed),
                                    lambda spec: read_texts(spec, config.data),
                                    held_out=_not_in(data.evaluation, data.validation))
    dropped = summary["unlabeled_dropped"]
    hooks.on_note(f"transfer set: {summary['labelled']:,} training texts + {summary['unlabeled']:,} unlabeled"
                  + (f" ({dropped:,} more dropped: eval or validation texts)" if dropped else "")
                  + f" + {summary['augmented']:,} augmented ({summary['augment_copies']} per text)"
                  f" = {summary['total']:,}")
    filler = np.zeros((len(extra),) + fit.labels.shape[1:], fit.labels.dtype)
    texts = np.concatenate([fit.texts, np.array(extra, dtype=object)])
    return replace(data, fit=Examples(texts, np.concatenate([fit.labels, filler]), fit.label_names, fit.source),
                   labelled=len(fit), transfer=summary, distill=config.distill)


def targets(config, data, run, hooks) -> tuple[np.ndarray, int]:
    """The packed targets of the fit part (the transfer set): the teacher's probabilities from the run's
    cache (teacher.npz) or computed and cached, with the gold labels of the labelled texts."""
    from textclf import runs

    texts = list(data.fit.texts)
    keys = digests(texts)
    path = run.path / runs.TEACHER_FILE
    cache, whole = _cached_answers(run, config.distill.teacher, keys)
    hooks.on_status("the teacher's probabilities of the transfer set")
    def teacher():
        found = runs.resolve_run(config.distill.teacher, complete=True)
        if runs.Run(found).labels != list(data.train.label_names):
            raise RunError(f"the teacher run {found.name} has labels {', '.join(runs.Run(found).labels)}; the data "
                           f"has {', '.join(data.train.label_names)}")
        return found

    probs, computed = teacher_probabilities(teacher, texts, cache,
        progress=lambda done, total: hooks.on_work("teacher probabilities", done, total))
    if probs.shape[1] != len(data.train.label_names):
        raise RunError(f"the teacher run {config.distill.teacher} answers {probs.shape[1]} labels, the data has "
                       f"{len(data.train.label_names)}")
    # the run keeps its own whole copy (a resume needs no other run, no teacher): rewritten when it is missing,
    # damaged or short of some text (its answers then came from the teacher or a sibling)
    if computed or not whole:
        try:
            runs.write_npz(path, {"digest": keys, "probabilities": probs})
        except OSError as err:
            raise RunError(f"cannot write {path}: {err.strerror or err}") from None
    hooks.on_note(f"teacher probabilities: {computed:,} computed, {len(texts) - computed:,} cached")
    has_gold = np.arange(len(texts)) < data.labelled
    return pack_targets(probs, data.fit.labels, has_gold), computed


def start_from_teacher(config, built, hooks) -> str | None:
    """With distill.embeddings teacher, set the student's word embeddings (BuiltModel.word_embeddings) to its
    teacher's pretrained input embedding of each word (the teacher family's word_vectors), projected on their
    top principal components to the student's width and scaled to the spread of the student's own initial
    embeddings; words the teacher has no vector for keep theirs. A teacher without word vectors, or whose
    encoder is no longer there, leaves the student's own start, and says so. What it did, in one line."""
    from textclf import runs
    from textclf.errors import TextclfError

    if config.distill.embeddings != "teacher":
        return None
    if built.word_embeddings is None:
        return f"word embeddings: none in a {config.model} student (distill.embeddings teacher applies to a " \
               "student with word embeddings, such as transformer)"
    words, variable = built.word_embeddings
    try:
        saved = runs.Run(runs.resolve_run(config.distill.teacher, complete=True)).config
        vectors = _teacher_vectors(saved, list(words), hooks)
    except (TextclfError, OSError) as err:
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        return f"word embeddings: the student's own (the teacher's word vectors are unavailable: {reason})"
    if vectors is None:
        return f"word embeddings: the student's own (a {saved['model']} teacher has no word vectors)"
    known = int(np.isfinite(vectors).all(axis=1).sum())
    if known < 2:
        return f"word embeddings: the student's own ({known} of {len(words):,} words have a teacher's vector)"
    variable.assign(project(vectors, variable.numpy()))
    return f"word embeddings: {known:,} of {len(words):,} words start from the teacher's ({saved['model']})"


def _teacher_vectors(saved: dict, words: list[str], hooks) -> np.ndarray | None:
    """The teacher family's word_vectors of `words` (None: the family has none)."""
    from textclf import config as cfg
    from textclf.models.catalog import MODELS
    from textclf.registry import load_hook

    entry = MODELS.get(saved["model"])
    spec = entry.family_spec()
    if not spec.word_vectors:
        return None
    params = cfg.from_dict(entry.params_cls, saved.get("model_params") or {}, "model_params")
    hooks.on_status("the student's word embeddings from the teacher's")
    return load_hook(spec.word_vectors)(params, words)


def project(vectors: np.ndarray, initial: np.ndarray) -> np.ndarray:
    """`initial` with the rows `vectors` has (finite) replaced by those vectors, centred, projected on their top
    principal components (as many as `initial` has columns; each component's sign fixed so its largest entry
    is positive: the same matrix on every worker) and scaled to `initial`'s standard deviation. Memory: the
    known rows and a width × width covariance, not a full SVD."""
    known = np.isfinite(vectors).all(axis=1)
    out = np.array(initial, dtype=np.float32, copy=True)
    if known.sum() < 2:
        return out
    x = vectors[known].astype(np.float64)
    x -= x.mean(axis=0)
    values, vectors_ = np.linalg.eigh(x.T @ x)
    order = np.argsort(values)[::-1][: min(initial.shape[1], x.shape[1])]
    components = vectors_[:, order]
    components *= np.sign(components[np.abs(components).argmax(axis=0), np.arange(components.shape[1])])
    projected = np.zeros((len(x), initial.shape[1]))
    projected[:, : components.shape[1]] = x @ components
    scale = float(np.std(initial)) / max(float(np.std(projected)), 1e-12)
    out[known] = (projected * scale).astype(np.float32)
    return out


def teacher_layer(teacher: str, runs_root="runs") -> dict:
    """The config layer a student starts from: its teacher's data and split (data.split_seed: the teacher's,
    so both are evaluated on the same texts), and distill.teacher as the teacher's directory."""
    from textclf import runs

    teacher_dir = runs.resolve_run(teacher, runs_root, complete=True)
    saved = runs.Run(teacher_dir).config
    data = dict(saved.get("data") or {})
    if data.get("fold") is not None or data.get("folds"):
        raise ConfigError(f"the teacher run {teacher_dir.name} was trained on a cross-validation fold; distil from a "
                          "run trained on a training/eval split")
    if data.get("split_seed") is None:
        data["split_seed"] = int((saved.get("training") or {}).get("seed", 0))
    return {"data": data, "distill": {"teacher": str(teacher_dir.resolve())}}


def _cached_answers(run, teacher: str, wanted: np.ndarray) -> tuple[dict | None, bool]:
    """The teacher's answers cached in the run (teacher.npz), and, for texts it lacks, in other students of
    the same teacher beside it (students that fit on the same texts share their transfer set); and whether the
    run's own file read and held every wanted text (else it is written again, whole)."""
    from textclf import runs

    found, parts, whole = set(), [], False
    wanted = {bytes(k) for k in wanted}
    siblings = sorted(p for p in run.path.parent.iterdir() if p != run.path and p.is_dir() and not p.is_symlink())
    for folder in [run.path, *siblings]:
        path = folder / runs.TEACHER_FILE
        if not path.is_file() or (folder != run.path and _teacher_of(folder) != teacher):
            continue
        try:
            arrays = runs.read_npz(path, ("digest", "probabilities"))
        except RunError:  # a damaged cache: the teacher answers again
            continue
        keep = [i for i, k in enumerate(arrays["digest"]) if bytes(k) in wanted and bytes(k) not in found]
        found.update(bytes(arrays["digest"][i]) for i in keep)
        parts.append((arrays["digest"][keep], arrays["probabilities"][keep]))
        whole = whole or (folder == run.path and len(found) == len(wanted))
        if len(found) == len(wanted):
            break
    parts = [part for part in parts if len(part[0])]
    if not parts:
        return None, whole
    return {"digest": np.concatenate([d for d, _ in parts]),
            "probabilities": np.concatenate([p for _, p in parts])}, whole


def _teacher_of(folder) -> str | None:
    from textclf import runs

    try:
        return (runs.Run(folder).config.get("distill") or {}).get("teacher")
    except (TextclfError, AttributeError):  # an unreadable config: not a student of this teacher
        return None


def _not_in(*parts):
    """texts -> those equal (up to case and spacing) to no text of `parts`: an unlabeled text that is an eval or
    validation text would carry the teacher's answer to it into the student's training."""
    from textclf.datastats import normal_text

    seen = {normal_text(t) for part in parts if part is not None for t in part.texts}
    return lambda texts: [t for t in texts if normal_text(t) not in seen]


def check_teacher(config, label_names, evaluation=None) -> None:
    """Before the run directory exists: the teacher's data and split are the student's, its labels the data's,
    and its eval texts (metrics.json's eval_fingerprint) the `evaluation` examples still (a teacher no longer
    there is not checked: see check_teacher_data)."""
    from textclf import runs

    check_teacher_data(config)
    try:
        teacher_dir = runs.resolve_run(config.distill.teacher, complete=True)
    except RunError:
        return
    teacher = runs.Run(teacher_dir)
    if teacher.labels != list(label_names):
        raise RunError(f"the teacher run {teacher_dir.name} has labels {', '.join(teacher.labels)}; "
                       f"the data has {', '.join(label_names)}")
    try:
        recorded = teacher.metrics.get("eval_fingerprint")
    except RunError:  # a damaged metrics.json: nothing to compare with
        recorded = None
    if evaluation is not None and recorded and recorded != evaluation.fingerprint():
        raise RunError(f"the teacher run {teacher_dir.name}'s eval data is not what it was evaluated on (its data "
                       "file changed since it trained, or an earlier textclf held it out otherwise): the two could "
                       "not be compared; train the teacher again")


def check_teacher_data(config) -> None:
    """A student trains and is evaluated on its teacher's data and split, never on the teacher's eval texts.
    (A teacher no longer there is not checked: a student resumed with its teacher's answers cached was
    checked when it started; one that needs the teacher says it is not found.)"""
    from textclf import runs

    try:
        teacher_dir = runs.resolve_run(config.distill.teacher, complete=True)
    except RunError:
        return
    saved = runs.Run(teacher_dir).config
    teacher = {**(saved.get("data") or {})}
    if teacher.get("split_seed") is None:
        teacher["split_seed"] = int((saved.get("training") or {}).get("seed", 0))
    ours = config.to_dict()["data"]
    differ = [k for k in ("train", "eval", "eval_fraction", "split_seed", "text_fields", "label_field")
              if k in teacher and _plain(teacher[k]) != _plain(ours.get(k))]
    if differ:
        k = differ[0]
        raise ConfigError(f"data.{k}: the student's ({ours.get(k)!r}) is not its teacher's ({teacher[k]!r}); a student "
                          "trains and is evaluated on its teacher's data (leave data unset: it is the teacher's)")


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value
