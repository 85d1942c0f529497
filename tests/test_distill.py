"""`textclf distill`: a student run trained on a teacher run's probabilities (textclf.distillation)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from conftest import TINY, ag_rows, ag_split, assert_one_line_error, cli, write_csv

STUDENT = ["--set", "model_params.embed_dim=8", "--set", "model_params.num_heads=1", "--set", "model_params.ff_dim=8",
           "--set", "model_params.max_length=16", "--set", "model_params.vocab_size=200"]


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A teacher (ngram-mlp) trained on a held-out split of one file, so its eval part comes from its seed."""
    root = tmp_path_factory.mktemp("distill")
    train = write_csv(root / "ag" / "train.csv", ag_rows(30, seed=1))
    done = cli("train", "--model", "ngram-mlp", "--data", f"csv:{train}", "--eval-fraction", "0.25", "--seed", "7",
               "--runs-root", root / "runs")
    assert done.exit_code == 0, done.output
    return root, (root / "runs" / "latest").resolve()


def test_a_tiny_teacher_makes_a_student_that_works_everywhere_a_run_works(teacher):
    root, teacher_dir = teacher
    runs = root / "runs"
    done = cli("distill", teacher_dir, "--student", "transformer", "--epochs", "2", "--seed", "3", "--augment", "2",
               "--runs-root", runs, *STUDENT)
    assert done.exit_code == 0, done.output
    student = (runs / "latest").resolve()
    assert student != teacher_dir
    config = json.loads((student / "config.json").read_text())
    assert config["distill"]["teacher"] == str(teacher_dir) and config["distill"]["augment"] == 2
    assert config["data"]["split_seed"] == 7 and config["training"]["seed"] == 3
    metrics = json.loads((student / "metrics.json").read_text())
    held = len(np.load(teacher_dir / "predictions.npz")["labels"])  # the teacher's eval part
    assert metrics["transfer_labelled"] == 120 - held and metrics["transfer_augmented"] == 2 * (120 - held)
    assert metrics["transfer_total"] == metrics["train_examples"] == 3 * (120 - held)
    # each distinct text once (an augmented text may repeat another)
    assert 2 * (120 - held) < metrics["teacher_probabilities_computed"] <= 3 * (120 - held)
    # evaluated on the teacher's eval part (its split seed), whatever the student's seed
    ours = np.load(student / "predictions.npz")["labels"]
    theirs = np.load(teacher_dir / "predictions.npz")["labels"]
    assert np.array_equal(ours, theirs) and 25 <= held <= 35
    evaluated = cli("evaluate", student, "--json", "--runs-root", runs)
    assert evaluated.exit_code == 0 and json.loads(evaluated.stdout)["accuracy"] == metrics["accuracy"]
    predicted = cli("predict", "Stocks rally as oil falls", "--run", student, "--json")
    assert predicted.exit_code == 0 and json.loads(predicted.stdout)["label"]
    assert (student / "model-lite.npz").exists()
    exported = cli("export", student, "--format", "tflite", "--out", root / "student-lite")
    assert exported.exit_code == 0, exported.output
    compared = cli("runs", "compare", teacher_dir, student, "--speed", "--plot", root / "frontier.png", "--json")
    assert compared.exit_code == 0, compared.output
    speeds = json.loads(compared.stdout)["metrics"]
    assert all(v > 0 for v in speeds["predict_texts_per_second"] + speeds["cold_predict_seconds"])
    assert (root / "frontier.png").read_bytes()[:4] == b"\x89PNG"
    from textclf.reports import frontier, html_report

    assert frontier({"runs": ["a", "b"], "metrics": {"accuracy": [0.9, 0.8],
                                                     "predict_texts_per_second": [70.0, 9000.0]}})[:4] == b"\x89PNG"
    assert "reliability diagram" in html_report([teacher_dir, student])


def test_a_second_student_reads_the_teacher_answers_of_the_first(teacher, tmp_path):
    """A student reads its teacher's answers from students of the same teacher beside it (teacher.npz): a
    second student of the same training split (of any seed: the augmentation follows the split's seed) runs the
    teacher on nothing (a resumed one: see
    test_a_killed_student_resumes_without_running_its_teacher_again)."""
    root, teacher_dir = teacher
    copy = tmp_path / "teacher"
    shutil.copytree(teacher_dir, copy)
    args = ["--epochs", "1", "--augment", "1", "--seed", "5", *STUDENT]
    first = cli("distill", copy, "--student", "transformer", "--run-dir", tmp_path / "runs" / "a", *args)
    assert first.exit_code == 0, first.output
    cache = np.load(tmp_path / "runs" / "a" / "teacher.npz")
    n = len(cache["probabilities"])
    assert cache["probabilities"].shape == (n, 4) and n % 2 == 0
    np.testing.assert_allclose(cache["probabilities"].sum(axis=1), 1.0, atol=1e-5)
    third = cli("distill", copy, "--student", "transformer", "--run-dir", tmp_path / "runs" / "c",
                "--set", "model_params.embed_dim=16", *args, "--seed", "6", "--embeddings", "teacher")
    assert third.exit_code == 0, third.output
    assert "word embeddings: the student's own (a ngram-mlp teacher has no word vectors)" in third.output
    metrics = json.loads((tmp_path / "runs" / "c" / "metrics.json").read_text())
    assert metrics["teacher_probabilities_computed"] == 0 and metrics["transfer_total"] == n
    np.testing.assert_allclose(np.load(tmp_path / "runs" / "c" / "teacher.npz")["probabilities"],
                               cache["probabilities"])
    bag = cli("distill", copy, "--student", "ngram-mlp", "--run-dir", tmp_path / "runs" / "d", "--epochs", "1",
              "--augment", "1", "--seed", "5", "--embeddings", "teacher")  # no word embeddings: said, not ignored
    assert bag.exit_code == 0, bag.output
    assert "word embeddings: none in a ngram-mlp student" in bag.output


def test_the_soft_target_loss_against_a_hand_computation():
    from textclf.distillation import distillation_loss, pack_targets

    teacher = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]], np.float32)
    student = np.array([[0.5, 0.3, 0.2], [0.2, 0.2, 0.6]], np.float32)
    gold = np.array([0, 1])
    has_gold = np.array([True, False])
    t, alpha = 2.0, 0.3
    got = np.asarray(distillation_loss(3, t, alpha, False)(pack_targets(teacher, gold, has_gold), student))

    def soften(p):
        z = np.log(p) / t
        return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)

    qt, qs = soften(teacher), soften(student)
    kl = (qt * np.log(qt / qs)).sum(axis=1) * t * t
    hard = -np.log(student[0, 0])
    np.testing.assert_allclose(got, [alpha * hard + (1 - alpha) * kl[0], kl[1]], rtol=1e-5)


def test_the_multilabel_soft_target_loss_against_a_hand_computation():
    from textclf.distillation import distillation_loss, pack_targets

    teacher = np.array([[0.9, 0.2]], np.float32)
    student = np.array([[0.6, 0.4]], np.float32)
    gold = np.array([[1, 0]], np.uint8)
    t, alpha = 3.0, 0.5
    got = np.asarray(distillation_loss(2, t, alpha, True)(pack_targets(teacher, gold, np.array([True])), student))

    def soften(p):
        return 1 / (1 + np.exp(-(np.log(p) - np.log1p(-p)) / t))

    qt, qs = soften(teacher), soften(student)
    kl = (qt * np.log(qt / qs) + (1 - qt) * np.log((1 - qt) / (1 - qs))).mean() * t * t
    hard = -(np.log(0.6) + np.log(0.6)) / 2
    np.testing.assert_allclose(got, [alpha * hard + (1 - alpha) * kl], rtol=1e-5)


def test_augmentation_is_deterministic_per_seed_and_follows_tangs_rules():
    from textclf.distillation import MASK, augment, transfer_texts
    from textclf.config import DistillConfig

    texts = [f"word{i} alpha beta gamma delta epsilon zeta eta theta" for i in range(50)]
    a, b, c = augment(texts, 2, seed=1), augment(texts, 2, seed=1), augment(texts, 2, seed=2)
    assert a == b and a != c and len(a) == 100
    words = {w for t in texts for w in t.split()} | {MASK}
    assert all(set(t.split()) <= words for t in a)
    assert any(MASK in t for t in a) and any(len(t.split()) < 9 for t in a)  # masked words, sampled n-grams
    assert sum(t == s for t, s in zip(a, texts * 2)) < 50  # most copies differ from their text
    # the budget caps the set; auto augmentation brings a small set towards 20,000 texts, 4 copies at most
    extra, summary = transfer_texts(DistillConfig(teacher="x", budget=120), texts, 1, lambda spec: [])
    assert summary == {"labelled": 50, "unlabeled": 0, "unlabeled_dropped": 0, "augmented": 70, "augment_copies": 4,
                       "total": 120}
    extra, summary = transfer_texts(DistillConfig(teacher="x", augment=0, unlabeled="u"), texts, 1,
                                    lambda spec: ["an unlabeled text"] * 5)
    assert extra == ["an unlabeled text"] * 5 and summary["augmented"] == 0


def test_unlabeled_texts_join_the_transfer_set(teacher, tmp_path):
    root, teacher_dir = teacher
    unlabeled = tmp_path / "more.txt"
    unlabeled.write_text("\n".join(" ".join(r[1:]) for r in ag_rows(5, seed=9)) + "\n")
    done = cli("distill", teacher_dir, "--student", "transformer", "--epochs", "1", "--augment", "0",
               "--unlabeled", unlabeled, "--run-dir", tmp_path / "s", *STUDENT)
    assert done.exit_code == 0, done.output
    metrics = json.loads((tmp_path / "s" / "metrics.json").read_text())
    assert metrics["transfer_unlabeled"] == 20 and metrics["transfer_total"] == metrics["transfer_labelled"] + 20
    # eval texts among the unlabeled ones are dropped: the teacher's answers to them would leak into training
    from textclf.evaluation import eval_examples

    leaked = [str(t) for t in eval_examples(tmp_path / "s").texts[:5]]
    unlabeled.write_text("\n".join(leaked + ["a new text about stocks"]) + "\n")
    again = cli("distill", teacher_dir, "--student", "transformer", "--epochs", "1", "--augment", "0",
                "--unlabeled", unlabeled, "--run-dir", tmp_path / "s2", *STUDENT)
    assert again.exit_code == 0, again.output
    assert "+ 1 unlabeled (5 more dropped: eval or validation texts)" in again.output
    metrics = json.loads((tmp_path / "s2" / "metrics.json").read_text())
    assert metrics["transfer_unlabeled"] == 1 and metrics["transfer_unlabeled_dropped"] == 5


@pytest.mark.parametrize("args,fragments", [
    (["--student", "ngram-linear"], ["ngram-linear fits hard labels"]),
    (["--student", "no-such-model"], ["unknown model or experiment 'no-such-model'"]),
    (["--alpha", "2"], ["alpha", "[0, 1]"]),
    (["--temperature", "0"], ["temperature"]),
    (["--unlabeled", "/no/such.txt"], ["/no/such.txt"]),
    (["--set", "data.folds=3"], ["data.folds", "teacher trained on"]),
    (["--set", "distill.teacher=elsewhere"], ["--set distill.teacher", "TEACHER argument"]),
    (["--student", "ngram-mlp", "--set", "model_params.loss=squared_hinge"], ["squared_hinge", "cross-entropy"]),
])
def test_bad_distillation_settings_are_one_line(teacher, tmp_path, args, fragments):
    root, teacher_dir = teacher
    result = cli("distill", teacher_dir, "--epochs", "1", "--run-dir", tmp_path / "s", *args)
    assert_one_line_error(result, *fragments)
    assert not (tmp_path / "s").exists()


def test_unlabeled_csv_and_jsonl_need_no_label_column(teacher, tmp_path):
    """Unlabeled texts come as users have them: a CSV with a text column alone, JSONL without a label field."""
    root, teacher_dir = teacher
    texts = tmp_path / "texts.csv"
    texts.write_text("text\nhello there sports\nbusiness news today\n")
    done = cli("distill", teacher_dir, "--epochs", "1", "--augment", "0", "--unlabeled", f"csv:{texts}",
               "--run-dir", tmp_path / "s", *STUDENT)
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "s" / "metrics.json").read_text())["transfer_unlabeled"] == 2
    typed = tmp_path / "few.txt"  # a typed spec is read as its type, whatever the file's name
    typed.write_text('{"text": "hello there sports"}\n{"text": "markets fell", "label": "not a class"}\n')
    done = cli("distill", teacher_dir, "--epochs", "1", "--augment", "0", "--unlabeled", f"jsonl:{typed}",
               "--run-dir", tmp_path / "s2", *STUDENT)
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "s2" / "metrics.json").read_text())["transfer_unlabeled"] == 2
    # a headerless list of sentences is not silently short of its first line
    texts.write_text("the first text is a sentence\nthe second one too\n")
    result = cli("distill", teacher_dir, "--epochs", "1", "--unlabeled", f"csv:{texts}", "--run-dir", tmp_path / "s3")
    assert_one_line_error(result, "line 1: the first line looks like data", "(e.g. text)")
    assert "--label-field" not in result.output and not (tmp_path / "s3").exists()


def test_a_runs_teacher_cache_is_whole_or_written_again(tmp_path):
    """teacher.npz is kept only when it reads and answers every text of the transfer set (else targets() writes
    it again, whole)."""
    from types import SimpleNamespace

    from textclf import runs
    from textclf.distillation import _cached_answers, digests

    own = tmp_path / "s"
    own.mkdir()
    run, wanted = SimpleNamespace(path=own), digests(["a", "b", "c"])
    assert _cached_answers(run, "T", wanted) == (None, False)  # missing
    runs.write_npz(own / "teacher.npz", {"digest": wanted[:2], "probabilities": np.full((2, 2), 0.5, np.float32)})
    assert _cached_answers(run, "T", wanted[:2])[1] and not _cached_answers(run, "T", wanted)[1]  # short of one
    (own / "teacher.npz").write_bytes((own / "teacher.npz").read_bytes()[:40])
    assert _cached_answers(run, "T", wanted[:2]) == (None, False)  # damaged


def test_a_missing_teacher_is_one_line(tmp_path):
    assert_one_line_error(cli("distill", tmp_path / "nope", "--runs-root", tmp_path), "not found")


def test_a_teacher_of_other_labels_is_refused(tmp_path):
    train, evaluation = ag_split(tmp_path, 10, 3)
    done = cli("train", "--data", f"csv:{train}", "--eval-data", f"csv:{evaluation}", "--runs-root", tmp_path / "r",
               *TINY, "--epochs", "1")
    assert done.exit_code == 0, done.output
    teacher_dir = (tmp_path / "r" / "latest").resolve()
    labels = json.loads((teacher_dir / "labels.json").read_text())
    (teacher_dir / "labels.json").write_text(json.dumps(list(reversed(labels))))
    result = cli("distill", teacher_dir, "--epochs", "1", "--run-dir", tmp_path / "s", *STUDENT)
    assert_one_line_error(result, "has labels")
    assert not (tmp_path / "s").exists()  # found before the run directory is made
    (teacher_dir / "labels.json").write_text(json.dumps(labels))
    evaluation.write_text(evaluation.read_text().replace(",", ", x", 1))  # the eval file changed since
    result = cli("distill", teacher_dir, "--epochs", "1", "--run-dir", tmp_path / "s", *STUDENT)
    assert_one_line_error(result, "eval data is not what it was evaluated on", "train the teacher again")
    assert not (tmp_path / "s").exists()


def test_a_killed_student_resumes_without_running_its_teacher_again(teacher, tmp_path):
    from test_resume import start_and_kill

    from textclf.runs import is_complete

    root, teacher_dir = teacher
    copy, student = tmp_path / "teacher", tmp_path / "student"
    shutil.copytree(teacher_dir, copy)
    start_and_kill(["distill", copy, "--student", "transformer", "--epochs", "12", "--augment", "4", "--run-dir",
                    student, *STUDENT, "--set", "training.global_batch_size=16"], cwd=tmp_path,
                   progress=student / "checkpoints" / "progress.json", after_epochs=2)
    assert (student / "teacher.npz").exists()
    shutil.rmtree(copy)  # the teacher's answers now come from the student's run alone
    done = cli("train", "--resume", student)
    assert done.exit_code == 0, done.output
    assert is_complete(student) and "resuming after epoch" in done.output
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["teacher_probabilities_computed"] == 0 and metrics["transfer_augmented"] > 0


def test_an_experiment_with_a_distill_field_trains_a_group_of_students(teacher, tmp_path):
    root, teacher_dir = teacher
    (tmp_path / "experiments.yaml").write_text(f"""
experiments:
  student:
    model: transformer
    model_params: {{embed_dim: 8, num_heads: 1, ff_dim: 8, max_length: 16, vocab_size: 200}}
    training: {{epochs: 1, seeds: 2}}
    distill: {{teacher: "{teacher_dir}", augment: 1, alpha: 0.2}}
  wrong-data:
    model: transformer
    data: {{train: sample}}
    distill: {{teacher: "{teacher_dir}"}}
""")
    done = cli("train", "--experiment", "student", "--experiments-file", tmp_path / "experiments.yaml",
               "--runs-root", tmp_path / "runs")
    assert done.exit_code == 0, done.output
    members = [p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.is_symlink()]
    configs = [json.loads((p / "config.json").read_text()) for p in members if (p / "config.json").exists()]
    assert len(configs) == 2 and {c["training"]["seed"] for c in configs} == {42, 43}
    assert all(c["distill"]["alpha"] == 0.2 and c["data"]["split_seed"] == 7 for c in configs)
    computed = sorted(json.loads((p / "metrics.json").read_text())["teacher_probabilities_computed"]
                      for p in members if (p / "metrics.json").exists())
    assert computed[0] == 0 < computed[1]  # the seeds share one transfer set: the teacher answers it once
    wrong = cli("train", "--experiment", "wrong-data", "--experiments-file", tmp_path / "experiments.yaml",
                "--runs-root", tmp_path / "runs")
    assert_one_line_error(wrong, "data.train", "its teacher's data")


def test_a_frontier_plot_needs_the_speed_it_draws(teacher, tmp_path):
    root, teacher_dir = teacher
    result = cli("runs", "compare", teacher_dir, "another", "--plot", tmp_path / "f.png", "--runs-root", root / "runs")
    assert_one_line_error(result, "--speed")
    assert not (tmp_path / "f.png").exists()


def test_the_projection_of_teacher_vectors_onto_a_students_embeddings():
    from textclf.distillation import project

    rng = np.random.default_rng(0)
    initial = rng.uniform(-0.05, 0.05, (6, 3)).astype(np.float32)
    vectors = np.full((6, 5), np.nan)
    vectors[2:] = rng.normal(size=(4, 5))
    vectors[5, 1] = np.inf  # not finite: keeps its own row, as the NaN rows do
    out = project(vectors, initial)
    np.testing.assert_array_equal(out[[0, 1, 5]], initial[[0, 1, 5]])
    assert np.std(out[2:5]) == pytest.approx(np.std(initial), rel=1e-5)
    # 3 known rows in 5 dimensions: their centred differences keep their geometry up to one scale (rank 2 <= 3)
    x = vectors[2:5] - vectors[2:5].mean(axis=0)
    distance = lambda m: np.linalg.norm(m[:, None] - m[None], axis=-1)  # noqa: E731
    ratio = distance(out[2:5])[np.triu_indices(3, 1)] / distance(x)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-4)
    np.testing.assert_array_equal(project(vectors, initial), out)  # the same matrix each time (signs fixed)
    one = np.full((6, 5), np.nan)
    one[0] = 1.0
    np.testing.assert_array_equal(project(one, initial), initial)  # fewer than 2 vectors: nothing to project


def test_a_taken_run_dir_is_refused_before_the_data_are_read(teacher, tmp_path, monkeypatch):
    from textclf.training import run

    root, teacher_dir = teacher
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "notes.txt").write_text("mine")
    monkeypatch.setattr(run, "_load_data", lambda *a, **k: pytest.fail("the data were read"))
    result = cli("distill", teacher_dir, "--epochs", "1", "--run-dir", tmp_path / "s", *STUDENT)
    assert_one_line_error(result, "already exists and is not empty")
    assert (tmp_path / "s" / "notes.txt").read_text() == "mine"
