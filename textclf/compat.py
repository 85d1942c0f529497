"""Every private TensorFlow / tf_keras / TF Hub hook textclf relies on, in one place.

Each was checked against the pinned stack (tensorflow 2.20.0, tf-keras 2.20.1, tensorflow-hub
0.16.1); an upgrade of any of them starts by reviewing this file. A hook that disappears
degrades to the public behaviour where one exists (slots created lazily, AutoGraph left on), and
tests/test_architecture.py keeps the private names out of every other module.
"""

from __future__ import annotations

from typing import Any


class NoAutograph:
    """Mixin for a Keras layer whose `call` is plain TensorFlow ops with no Python control flow on
    tensors: tf_keras would convert it with AutoGraph at every symbolic call (≈ 0.3-0.5 s of a cold
    load), for the same graph. tf_keras 2.20.1 base_layer.Layer._should_use_autograph."""

    def _should_use_autograph(self) -> bool:
        return False


def create_optimizer_slots(model: Any) -> None:
    """Create the optimizer's variables (Adam's moments, the step count) now, in the strategy's scope.

    Left to the first training step, they are created inside the traced train function, and a
    tf.function that creates variables is traced twice: 0.2-0.5 s of ngram-mlp's first epoch.
    OptimizerV2 (Adam, AdamWeightDecay) has no public method for it (tf_keras 2.20.1
    OptimizerV2._create_all_weights); without one, creation stays lazy.
    """
    create = getattr(model.optimizer, "_create_all_weights", None)
    if create is not None:
        create(model.trainable_variables)


def random_generators(model: Any) -> list:
    """The tf.random.Generator of every random (e.g. dropout) layer, in a stable order, to checkpoint
    (tf_keras 2.20.1 BaseRandomLayer._random_generator, a backend.RandomGenerator with `_generator`)."""
    found = []
    for layer in model.submodules:
        gen = getattr(getattr(layer, "_random_generator", None), "_generator", None)
        if gen is not None:
            found.append(gen)
    return found


def disable_op_determinism() -> None:
    """Undo tf.config.experimental.enable_op_determinism: the public API can only turn it on, and
    in-process callers (tests, `experiments run`) need each run to start from the default again
    (tensorflow 2.20.0 tensorflow.python.framework.config.disable_op_determinism)."""
    from tensorflow.python.framework import config as tf_config

    tf_config.disable_op_determinism()


def frozen_graph(function: Any) -> Any:
    """A concrete function with its variables turned into constants (tensorflow 2.20.0
    tensorflow.python.framework.convert_to_constants.convert_variables_to_constants_v2: the
    public route, tf.compat.v1's graph_util, needs a Session and v1 graphs)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(function)
