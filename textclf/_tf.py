"""The one place that selects legacy Keras and imports TensorFlow.

tensorflow_hub and Model Garden (`official.*`) are built on tf_keras (Keras 2); with
Keras 3 as `tf.keras`, hub layers and `create_optimizer` fail. TensorFlow reads
TF_USE_LEGACY_KERAS when it is first imported, so every textclf module that needs
TensorFlow imports it from here, and this module must run before anything else imports it.
"""

import logging
import os
import sys
import warnings

_TF_ALREADY_IMPORTED = "tensorflow" in sys.modules
os.environ["TF_USE_LEGACY_KERAS"] = "1"
# Level 3 hides the C++ log noise (e.g. "failed call to cuInit" on CPU-only machines);
# errors that matter still surface as Python exceptions. Users can override it.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# tf_keras (imported by TensorFlow itself under legacy Keras) imports pandas, if installed,
# only so that fit() accepts pandas Series; that costs ~0.17 s of every command's start
# (measured with -X importtime) and textclf feeds tf.data datasets only. Hide pandas while
# TensorFlow loads (tf_keras then skips it); `import pandas` works normally afterwards.
_HIDE_PANDAS = "pandas" not in sys.modules
if _HIDE_PANDAS:
    sys.modules["pandas"] = None  # type: ignore[assignment]
try:
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402
finally:
    if _HIDE_PANDAS:
        del sys.modules["pandas"]

if _TF_ALREADY_IMPORTED and tf.keras.layers.Layer is not keras.layers.Layer:
    warnings.warn(
        "TensorFlow was imported before textclf set TF_USE_LEGACY_KERAS=1; "
        "TF Hub layers and Model Garden optimizers will not work in this process",
        stacklevel=2,
    )


def _absl_min_log_level() -> None:
    """Apply TF_CPP_MIN_LOG_LEVEL to the C++ messages TensorFlow logs through absl.

    TensorFlow 2.20 logs some C++ messages (e.g. grappler's "No allowlist ops found" under
    the oneDNN bfloat16 rewrite, several per training run) with absl, which ignores
    TF_CPP_MIN_LOG_LEVEL and prints them before absl::InitializeLog. absl's SetMinLogLevel
    is exported by libtensorflow_framework; its name carries the abseil release TensorFlow
    was built with (2025-01-27 for the pinned 2.20), so another build just keeps the noise.
    """
    import ctypes

    try:
        level = min(3, max(0, int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))))
        lib = ctypes.CDLL(os.path.join(tf.sysconfig.get_lib(), "libtensorflow_framework.so.2"))
        set_min_log_level = lib._ZN4absl12lts_2025012714SetMinLogLevelENS0_18LogSeverityAtLeastE
    except (OSError, AttributeError, ValueError):
        return
    set_min_log_level.argtypes = [ctypes.c_int]
    set_min_log_level(level)


_absl_min_log_level()
tf.get_logger().setLevel("ERROR")
# tfds and Model Garden log warnings through absl (deprecations, partial cache folders);
# the CLI reports what matters itself.
logging.getLogger("absl").setLevel(logging.ERROR)

__all__ = ["tf", "keras"]
