"""Runtime choices with mocked devices, and real distribution on logical CPUs / local workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from conftest import TINY, ag_rows, write_csv
from textclf.errors import ConfigError
from textclf.runtime import Devices, batch_sizes, choose_precision, choose_strategy


@pytest.mark.parametrize("devices, expected", [
    (Devices(), "default"),
    (Devices(gpus=((8, 0),)), "one_device"),
    (Devices(gpus=((8, 0), (8, 0))), "mirrored"),
    (Devices(gpus=((8, 0),), workers=2), "multi_worker"),
    (Devices(tpu=True, gpus=((8, 0),)), "tpu"),
])
def test_auto_strategy(devices, expected):
    assert choose_strategy("auto", devices) == expected
    assert choose_strategy("mirrored", devices) == "mirrored"  # an explicit choice wins


def test_batch_arithmetic():
    assert batch_sizes(64, 0, 1) == (64, 64)
    assert batch_sizes(64, 0, 4) == (64, 16)
    assert batch_sizes(64, 8, 4) == (32, 8)  # per-replica size scales the global batch
    with pytest.raises(ConfigError, match="does not split evenly over 3 replicas"):
        batch_sizes(64, 0, 3)


@pytest.mark.parametrize("devices, strategy, expected", [
    (Devices(), "default", "float32"),
    (Devices(gpus=((7, 5),)), "one_device", "mixed_float16"),
    (Devices(gpus=((8, 0), (9, 0))), "mirrored", "mixed_float16"),
    (Devices(gpus=((6, 1),)), "one_device", "float32"),  # Pascal: no tensor cores
    (Devices(gpus=((8, 0), None)), "mirrored", "float32"),  # unknown capability: stay safe
    (Devices(tpu=True), "tpu", "mixed_bfloat16"),
])
def test_precision_choice(devices, strategy, expected):
    assert choose_precision("auto", devices, strategy) == expected
    assert choose_precision("float32", devices, strategy) == "float32"


@pytest.mark.parametrize("devices, cpu_bf16_model, expected", [
    (Devices(cpu_bf16=True), True, "mixed_bfloat16"),  # a BERT encoder on an AVX512-BF16/AMX CPU
    (Devices(cpu_bf16=True), False, "float32"),  # the Transformer: measured no better
    (Devices(), True, "float32"),  # no bf16 instructions: emulated bf16 is slow
    (Devices(cpu_bf16=True, gpus=((8, 0),)), True, "mixed_float16"),  # a GPU decides
])
def test_cpu_bf16_precision_choice(devices, cpu_bf16_model, expected):
    strategy = choose_strategy("auto", devices)
    assert choose_precision("auto", devices, strategy, cpu_bf16_model=cpu_bf16_model) == expected
    assert choose_precision("float32", devices, strategy, cpu_bf16_model=cpu_bf16_model) == "float32"


def test_only_bert_encoders_ask_for_cpu_bf16():
    from textclf.models.bert.params import BertParams
    from textclf.models.transformer.params import TransformerParams

    assert BertParams(encoder="x", trainable=False).cpu_bf16
    assert BertParams(encoder="x", trainable=True).cpu_bf16  # fine-tuning too (docs/PERF-LEVERS.md)
    assert not getattr(TransformerParams(), "cpu_bf16", False)


def _run_cli(args, env=None, timeout=240):
    return subprocess.run([sys.executable, "-c", args[0], *args[1:]], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


TWO_CPUS = textwrap.dedent("""
    import sys
    from textclf._tf import tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    sys.argv = ["textclf", *sys.argv[1:]]
    from textclf.__main__ import main
    main()
""")


def test_mirrored_strategy_on_two_logical_cpus(tmp_path):
    train = write_csv(tmp_path / "d" / "train.csv", ag_rows(20))
    proc = _run_cli([TWO_CPUS, "train", "--data", f"csv:{train}", "--eval-fraction", "0.2", "--epochs", "2",
                     "--strategy", "mirrored", "--runs-root", str(tmp_path / "runs"), *TINY])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "strategy mirrored (2 replicas), batch 8/replica × 2 = 16 global" in proc.stderr
    info = json.loads((tmp_path / "runs" / "latest" / "run.json").read_text())
    assert info["status"] == "complete" and info["runtime"]["replicas"] == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_strategy_two_local_workers(tmp_path):
    train = write_csv(tmp_path / "d" / "train.csv", ag_rows(12))
    cluster = {"worker": [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]}
    code = "import sys; sys.argv = ['textclf', *sys.argv[1:]]; from textclf.__main__ import main; main()"
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", code, "train", "--data", f"csv:{train}", "--eval-fraction", "0.25",
             "--epochs", "1", "--strategy", "multi_worker", "--runs-root", str(tmp_path / f"runs{index}"), *TINY],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("a worker did not finish within 300 s")
        results.append((p.returncode, err))
    assert [code for code, _ in results] == [0, 0], [err[-1500:] for _, err in results]
    assert "strategy multi_worker (2 replicas)" in results[0][1]
    chief = json.loads((tmp_path / "runs0" / "latest" / "run.json").read_text())
    assert chief["status"] == "complete" and chief["runtime"]["replicas"] == 2
    assert not (tmp_path / "runs1").exists()  # only the chief writes a run


def test_cpu_mixed_bfloat16_reaches_savedmodel_graphs_and_is_reset():
    from textclf._tf import keras, tf
    from textclf.config import RuntimeConfig
    from textclf.runtime import reset_precision, setup_runtime

    option = "auto_mixed_precision_onednn_bfloat16"
    runtime = setup_runtime(RuntimeConfig(precision="mixed_bfloat16"), 8, Devices())
    try:
        assert runtime.precision == "mixed_bfloat16"
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
        # the Keras policy cannot reach inside a hub SavedModel; oneDNN's graph rewrite does
        assert tf.config.optimizer.get_experimental_options().get(option) is True
    finally:
        reset_precision()
    assert keras.mixed_precision.global_policy().name == "float32"
    assert not tf.config.optimizer.get_experimental_options().get(option)
