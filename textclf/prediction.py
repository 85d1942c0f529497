"""Prediction with a finished run: one model load, any number of texts."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from textclf import task
from textclf.errors import DataError, RunError, raise_deferred_termination
from textclf.models.saving import check_outputs, load_model
from textclf.runs import Run, resolve_run

PREDICT_BATCH = 256
PREDICT_CHARS = 1 << 22  # characters per batch at most (a longer text alone): memory follows the texts' length


CHARS_PER_TOKEN = 4  # about: ag7600's news is 4.4 characters per WordPiece, SST-2's sentences 4.0


def batch_tokens(config: dict, family_name: str = "") -> tuple[int, int]:
    """(tokens a prediction batch holds at most, a text's tokens at most) for a run of this config: its model
    family's predict_tokens (textclf.registry.Family; 0 = no bound) and the run's max_length (0: unknown).
    `family_name`: the family run.json records, for a model not known here (an import whose store is elsewhere)."""
    from textclf.models.catalog import family_of

    family = family_of(config.get("model"), family_name) if isinstance(config, dict) else None
    tokens = family.predict_tokens if family is not None else 0  # a model unknown here: no token bound
    try:
        longest = int((config.get("model_params") or {}).get("max_length") or 0)
    except (TypeError, ValueError, AttributeError):
        longest = 0
    return tokens, longest


def work_batches(batches: list[np.ndarray], lengths: np.ndarray, tokens: int, longest: int) -> list[np.ndarray]:
    """Each length-sorted batch cut further so it holds about `tokens` tokens at most (a text: its characters /
    CHARS_PER_TOKEN, at most `longest` when known; one text at least): the rows stay in order, so the inverse
    permutation still applies to the concatenated results. tokens 0: the batches as they are."""
    if not tokens:
        return batches
    estimate = np.maximum(np.asarray(lengths, np.int64) // CHARS_PER_TOKEN, 1)
    if longest:
        estimate = np.minimum(estimate, longest)
    out = []
    for rows in batches:
        start, total = 0, 0
        for i, row in enumerate(rows):
            if i > start and total + estimate[row] > tokens:
                out.append(rows[start:i])
                start, total = i, 0
            total += estimate[row]
        out.append(rows[start:])
    return out


def visit_order(n: int) -> np.ndarray:
    """The order the n length-sorted batches are run in: a fixed shuffle. In length order the short texts come
    first, so progress counted in texts runs ahead of the work and its time-left estimate promises too little
    (teacher probabilities of 21k news texts: "about 3 min left" for 7 minutes); shuffled, every stretch of
    batches holds texts of every length alike."""
    return np.random.default_rng(0).permutation(n)


@dataclass(frozen=True)
class Prediction:
    """The top label, its probability, and the top-k (label, probability) pairs."""

    text: str
    label: str | None  # None: a blank line of a file, kept so outputs line up with inputs
    probability: float | None
    top_k: list[dict]

    abstained: bool = False  # below the confidence threshold: no label, the ranked labels kept
    # A multi-label run's answer: every label at or above its threshold, most probable first ([]: none;
    # `label` is then the first of them). None for a single-label run.
    labels: list[str] | None = None

    def to_dict(self) -> dict:
        if self.labels is not None:
            return {"text": self.text, "labels": self.labels, "top_k": self.top_k}
        out = {"text": self.text, "label": self.label, "probability": self.probability, "top_k": self.top_k}
        return {**out, "abstained": True} if self.abstained else out

    def abstaining_below(self, threshold: float) -> "Prediction":
        """This prediction, or an abstention (label and probability None) when less confident than `threshold`."""
        if self.label is None or self.probability >= threshold:
            return self
        return Prediction(self.text, None, None, self.top_k, abstained=True)


def run_config(run: Run) -> dict:
    """A run's config.json, or {} when it is unreadable (the defaults' limits apply)."""
    try:
        return run.config
    except Exception:
        return {}


def text_limit(config: dict) -> int:
    """The longest text a run answers (its data.max_text_chars; the default for runs that lack it)."""
    from textclf.config import MAX_TEXT_CHARS

    try:
        return int(config.get("data", {}).get("max_text_chars", MAX_TEXT_CHARS))
    except Exception:  # a damaged data section: the default limit
        return MAX_TEXT_CHARS


class Predictor:
    """A loaded run: labels plus the string-in, probabilities-out model.

    `use_twin`: answer with the run's TensorFlow-free twin (textclf.twins) when it has one, so a
    short-lived process never imports TensorFlow; else (or without a twin) the Keras model.
    """

    def __init__(self, run_dir: Path, use_twin: bool = False) -> None:
        self.run_dir = run_dir
        run = Run(run_dir)
        self.labels = run.labels
        self.thresholds = run.thresholds  # per label (multi-label runs), else None
        self.multilabel = self.thresholds is not None
        config = run_config(run)  # read once
        self.max_text_chars = text_limit(config)
        try:
            family_name = run.info.get("family", "")
        except Exception:  # no readable run.json: the family from the config's model alone
            family_name = ""
        self.batch_tokens, self.longest = batch_tokens(config, family_name)
        self.twin = None
        native = not run.model_path.exists()  # trained without TensorFlow: the arrays are the model
        if use_twin or native:
            from textclf.twins import load

            self.twin = load(run_dir)
            if self.twin is None and native:
                raise RunError(f"cannot load the model in {run_dir}: its model file is missing or damaged; "
                               "retrain the run")
        self.model = load_model(run_dir) if self.twin is None else None

    def probabilities(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None) -> np.ndarray:
        """Probabilities of `texts`, in batches of similar length (at most PREDICT_BATCH texts, PREDICT_CHARS
        characters and the family's predict_tokens; run in visit_order); `progress(done, total)` after each."""
        from textclf.data import length_order
        from textclf.textrules import nul_as_space

        texts = np.asarray([nul_as_space(str(t)) for t in texts], dtype=object)  # no padding to the longest
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        lengths = np.fromiter(map(len, texts), np.int64, len(texts))
        batches, inverse = length_order(lengths, PREDICT_BATCH, PREDICT_CHARS)
        eager = len(batches) == 1  # up to PREDICT_BATCH texts: an eager call answers sooner than tracing a graph
        batches = work_batches(batches, lengths, self.batch_tokens, self.longest)
        if self.twin is not None:
            forward = lambda rows: self.twin.probabilities(list(texts[rows]))  # noqa: E731
        else:
            from textclf._tf import tf

            # (cold start; serve's requests of up to 64 texts, however finely a BERT's are cut)
            call = (lambda x: self.model(x, training=False)) if eager else self._forward
            forward = lambda rows: call(tf.constant(texts[rows])).numpy()  # noqa: E731
        parts, done = [None] * len(batches), 0
        for k in visit_order(len(batches)):
            raise_deferred_termination()
            parts[k] = forward(batches[k])
            done += len(batches[k])
            if progress is not None:
                progress(done, len(texts))
        probs = np.concatenate(parts)
        if self.twin is not None:
            check_outputs(probs.shape[1], Run(self.run_dir))
        return probs[inverse]

    @property
    def _forward(self):
        from textclf._tf import tf

        if not hasattr(self, "_fn"):
            self._fn = tf.function(lambda x: self.model(x, training=False), reduce_retracing=True)
        return self._fn

    def predict(self, texts: Sequence[str], top_k: int = 1, *, blank_as_none: bool = False,
                threshold: float | None = None, first: int = 1, what: str = "text") -> list[Prediction]:
        """The top-k labels of each text. An empty text is an error, or with `blank_as_none` (the
        blank lines of a file) a result with label None in its place. `threshold`: a single-label run
        abstains below it; a multi-label run answers every label at or above it (instead of each
        label's own threshold). Errors name `what` and its number counted from `first` ("line 4097")."""
        from textclf.textrules import nul_as_space

        given, texts = list(texts), [nul_as_space(str(t)) for t in texts]  # read before the blank check: "\0" is blank
        blank = [not text.strip() for text in texts]
        if not blank_as_none and any(blank):
            raise DataError(f"{what} {blank.index(True) + first} is empty")
        limit = self.max_text_chars
        for i, text in enumerate(texts):
            if len(text) > limit:  # memory grows with a text's length: refuse an enormous one up front
                raise DataError(f"{what} {i + first} has {len(text):,} characters, more than the limit of "
                                f"{limit:,} (the run's data.max_text_chars: --max-text-chars when training)")
        for i, text in enumerate(texts):  # e.g. a command-line argument of bytes that are not UTF-8
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:
                raise DataError(f"{what} {i + first} is not valid UTF-8 (at character {err.start + 1}); "
                                "give the text in UTF-8") from None
        probs = self.probabilities([t for t, b in zip(texts, blank) if not b])
        k = max(1, min(top_k, len(self.labels)))
        results, rows = [], iter(probs)
        for text, is_blank in zip(given, blank):  # each answer shows its text as given
            if is_blank:  # a multi-label run's rows keep their shape: no labels
                results.append(Prediction(text, None, None, [], labels=[] if self.multilabel else None))
                continue
            p = next(rows)
            ranked = np.argsort(-p, kind="stable")
            if self.multilabel:
                cut = np.asarray(self.thresholds) if threshold is None else np.full(len(p), threshold)
                picked = task.chosen(p, cut)
                chosen = [self.labels[j] for j in picked]
                # top_k: the k most probable and every chosen label (thresholds differ per label, so a
                # chosen label may rank below one that is not), so each answer comes with its probability
                shown = set(ranked[:k].tolist()) | set(picked)
                tops = [{"label": self.labels[j], "probability": float(p[j])} for j in ranked if j in shown]
                top = chosen[0] if chosen else None
                results.append(Prediction(text, top, float(p[self.labels.index(top)]) if top else None, tops,
                                          labels=chosen))
                continue
            tops = [{"label": self.labels[j], "probability": float(p[j])} for j in ranked[:k]]
            answer = Prediction(text, tops[0]["label"], tops[0]["probability"], tops)
            results.append(answer if threshold is None else answer.abstaining_below(threshold))
        return results


def uncalibrated(run_dir: Path) -> Predictor:
    """A run's predictor without its temperature (textclf.calibration): the model's own probabilities."""
    predictor = Predictor(run_dir)
    if predictor.twin is not None:  # a run whose arrays are its model: the arrays without the temperature
        from textclf.twins import Twin, read_arrays

        arrays = {k: v for k, v in read_arrays(run_dir).items() if not k.startswith("temperature")}
        predictor.twin = Twin(arrays)
    else:
        from textclf.models.saving import without_temperature

        predictor.model = without_temperature(predictor.model)
    return predictor


def load_predictor(run: str | Path | None = None, root: str | Path = "runs", use_twin: bool = False) -> Predictor:
    """Load a complete run (default: the latest under root); `use_twin`: see Predictor."""
    return Predictor(resolve_run(run, root), use_twin=use_twin)
