"""Devices -> tf.distribute strategy, mixed precision, global vs per-replica batch size.

The pure choices (`choose_strategy`, `batch_sizes`, `choose_precision`) take a `Devices`
description so they can be tested with any device list; `setup_runtime` detects the real
devices and applies the choices.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from textclf.config import RuntimeConfig
from textclf.errors import ConfigError


@dataclass(frozen=True)
class Devices:
    """What the process can use."""

    gpus: tuple[tuple[int, int] | None, ...] = ()  # compute capability per GPU (None = unknown)
    tpu: bool = False
    workers: int = 1  # from TF_CONFIG
    task: dict = field(default_factory=dict)
    cpu_bf16: bool = False  # the CPU has bfloat16 instructions (AVX512-BF16 / AMX)


def detect_devices() -> Devices:
    from textclf._tf import tf

    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            gpus.append(tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or ()) or None)
        except Exception:
            gpus.append(None)
    cluster = tf_config()
    workers = len(cluster.get("cluster", {}).get("worker", [])) + len(cluster.get("cluster", {}).get("chief", []))
    # Only physical-device queries here: listing logical devices would initialise the
    # runtime, after which MultiWorkerMirroredStrategy can no longer be created.
    return Devices(gpus=tuple(gpus), tpu=bool(os.environ.get("TPU_NAME") or tf.config.list_physical_devices("TPU")),
                   workers=max(1, workers), task=cluster.get("task", {}), cpu_bf16=bool(cpu_bf16_features()))


def tf_config() -> dict:
    """TF_CONFIG from the environment, checked ({} when unset)."""
    raw = os.environ.get("TF_CONFIG", "")
    if not raw:
        return {}
    from textclf.textfiles import loads

    try:
        config = loads(raw)
    except ValueError:
        raise ConfigError("TF_CONFIG is not valid JSON") from None
    return check_tf_config(config)


def check_tf_config(config) -> dict:
    """TF_CONFIG's shape: {"cluster": {job: ["host:port", ...]}, "task": {"type": job, "index": i}}."""
    shape = ('expected {"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}')
    if not isinstance(config, dict):
        from textclf.textfiles import json_kind

        raise ConfigError(f"TF_CONFIG: {shape}, got {json_kind(config)}")
    cluster, task = config.get("cluster", {}), config.get("task", {})
    if not isinstance(cluster, dict) or not all(
            isinstance(job, str) and isinstance(hosts, list) and all(isinstance(h, str) and ":" in h for h in hosts)
            for job, hosts in cluster.items()):
        raise ConfigError(f"TF_CONFIG: cluster: {shape}")
    if not isinstance(task, dict) or (task and (not isinstance(task.get("type"), str)
                                                or not isinstance(task.get("index", 0), int)
                                                or isinstance(task.get("index", 0), bool))):
        raise ConfigError(f"TF_CONFIG: task: {shape}")
    if task:
        hosts = cluster.get(task["type"])
        if hosts is None:
            raise ConfigError(f"TF_CONFIG: task type {task['type']!r} is not a job of the cluster "
                              f"({', '.join(cluster) or 'none'})")
        if not 0 <= task.get("index", 0) < len(hosts):
            raise ConfigError(f"TF_CONFIG: task index {task.get('index', 0)} is outside {task['type']}'s "
                              f"{len(hosts)} hosts")
    return config


def choose_strategy(requested: str, devices: Devices) -> str:
    """auto: TPU > several workers (TF_CONFIG) > several GPUs > one GPU > the default strategy."""
    if requested != "auto":
        return requested
    if devices.tpu:
        return "tpu"
    if devices.workers > 1:
        return "multi_worker"
    if len(devices.gpus) > 1:
        return "mirrored"
    if len(devices.gpus) == 1:
        return "one_device"
    return "default"


def batch_sizes(global_batch_size: int, per_replica_batch_size: int, replicas: int) -> tuple[int, int]:
    """(global, per replica). A per-replica size scales the global batch with the replicas."""
    if per_replica_batch_size:
        return per_replica_batch_size * replicas, per_replica_batch_size
    if global_batch_size % replicas:
        raise ConfigError(f"batch size {global_batch_size} does not split evenly over {replicas} replicas; "
                          f"use a multiple of {replicas} or --per-replica-batch-size")
    return global_batch_size, global_batch_size // replicas


def cpu_bf16_features() -> list[str]:
    """The CPU's bfloat16 instruction sets (AMX / AVX512-BF16), from /proc/cpuinfo on Linux."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return []
    return sorted({f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")})


def choose_precision(requested: str, devices: Devices, strategy: str, *, cpu_bf16_model: bool = False) -> str:
    """mixed_bfloat16 on TPU, mixed_float16 on GPUs of compute capability >= 7.0, else float32.

    On a CPU with bf16 instructions (`Devices.cpu_bf16`), `cpu_bf16_model` models (BERT
    encoders) get mixed_bfloat16: on this project's AVX512-BF16 machine it ran the
    frozen-MiniLM recipe 1.2-2x faster in alternating runs at the same accuracy, and
    fine-tuning MiniLM 1.35x faster (faster in 3 of 3 paired rounds, accuracy -0.08 pt
    against a seed sd of 0.4-0.6 pt). The from-scratch Transformer stays float32: too small
    to gain (0.90-0.94x). Numbers: bench/levers.py, docs/PERF-LEVERS.md; `--precision` overrides.
    """
    if requested != "auto":
        return requested
    if strategy == "tpu":
        return "mixed_bfloat16"
    if devices.gpus and strategy != "default" and all(cc is not None and cc >= (7, 0) for cc in devices.gpus):
        return "mixed_float16"
    if not devices.gpus and not devices.tpu and devices.cpu_bf16 and cpu_bf16_model:
        return "mixed_bfloat16"
    return "float32"


@dataclass
class Runtime:
    """The strategy in use and the numbers derived from it."""

    strategy: Any
    name: str
    replicas: int
    global_batch_size: int
    per_replica_batch_size: int
    precision: str
    jit_compile: bool
    is_chief: bool = True

    def describe(self) -> str:
        return (f"strategy {self.name} ({self.replicas} replica{'s' if self.replicas != 1 else ''}), "
                f"batch {self.per_replica_batch_size}/replica × {self.replicas} = {self.global_batch_size} global, "
                f"precision {self.precision}" + (", XLA" if self.jit_compile else ""))

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k != "strategy"}


def make_strategy(name: str, devices: Devices, cfg: RuntimeConfig):
    from textclf._tf import tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if devices.gpus else "/cpu:0")
    if name == "mirrored":
        if devices.gpus:
            return tf.distribute.MirroredStrategy()
        # No GPU: mirror over the logical CPU devices (several only when configured, e.g. in tests).
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multi_worker":
        if devices.workers < 2 and not os.environ.get("TF_CONFIG"):
            raise ConfigError("--strategy multi_worker needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=cfg.tpu or None)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
            return tf.distribute.TPUStrategy(resolver)
        except (ValueError, RuntimeError, tf.errors.OpError) as err:
            raise ConfigError(f"no TPU available ({str(err).splitlines()[0]})") from None
    raise ConfigError(f"unknown strategy {name!r}")


def setup_runtime(cfg: RuntimeConfig, global_batch_size: int, devices: Devices | None = None, *,
                  cpu_bf16_model: bool = False) -> Runtime:
    """Create the strategy, split the batch and set the global Keras precision policy.

    `cpu_bf16_model`: the model runs faster in bfloat16 on CPUs that have it (`choose_precision`).
    """
    from textclf._tf import keras, tf

    devices = devices or detect_devices()
    name = choose_strategy(cfg.strategy, devices)
    strategy = make_strategy(name, devices, cfg)
    replicas = strategy.num_replicas_in_sync
    global_bs, per_replica = batch_sizes(global_batch_size, cfg.per_replica_batch_size, replicas)
    precision = choose_precision(cfg.precision, devices, name, cpu_bf16_model=cpu_bf16_model)
    keras.mixed_precision.set_global_policy(precision)
    if precision == "mixed_bfloat16" and not devices.gpus and not devices.tpu:
        # A Keras policy cannot reach inside a SavedModel (TF Hub encoders keep their float32
        # graph); oneDNN's graph rewrite runs their matmuls in bfloat16 too.
        tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": True})
    if cfg.deterministic:  # same seed, same data -> same numbers (may cost some speed)
        tf.config.experimental.enable_op_determinism()
    return Runtime(strategy, name, replicas, global_bs, per_replica, precision, cfg.jit_compile,
                   is_chief(devices.task))


def is_chief(task: dict | None = None) -> bool:
    """Whether this process writes the run: no cluster, the chief, or worker 0 of a cluster without one.
    `task`: TF_CONFIG's (read when not given)."""
    task = (tf_config().get("task") if task is None else task) or {}
    return not task or task.get("type") == "chief" or (task.get("type") == "worker" and task.get("index", 0) == 0
                                                       and "chief" not in tf_config().get("cluster", {}))


def reset_precision() -> None:
    """Undo the process-wide settings of `setup_runtime` (precision policy, bf16 rewrite, op determinism)."""
    from textclf._tf import keras, tf

    keras.mixed_precision.set_global_policy("float32")
    tf.config.optimizer.set_experimental_options({"auto_mixed_precision_onednn_bfloat16": False})
    from textclf.compat import disable_op_determinism

    disable_op_determinism()


class float32_graphs:
    """`with float32_graphs() as changed:` graphs made inside are optimized without the process-wide oneDNN
    bfloat16 rewrite a bf16 run turns on (`runtime.setup_runtime`); `changed` says whether it was on.

    `predict`, `evaluate` and `serve` never turn it on, so the eval predictions a run records must be
    made without it too: with it, a fine-tuned MiniLM's recorded accuracy and `evaluate`'s differed
    (80.73% vs 80.39% on SST-2; a 16-text test flipped one text in three runs).
    """

    OPTION = "auto_mixed_precision_onednn_bfloat16"

    def __enter__(self) -> bool:
        from textclf._tf import tf

        self.was = bool(tf.config.optimizer.get_experimental_options().get(self.OPTION))
        if self.was:
            tf.config.optimizer.set_experimental_options({self.OPTION: False})
        return self.was

    def __exit__(self, *exc) -> bool:
        from textclf._tf import tf

        if self.was:
            tf.config.optimizer.set_experimental_options({self.OPTION: True})
        return False
