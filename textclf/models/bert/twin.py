"""The BERT family's twin: the whole model as one frozen GraphDef in a tf.compat.v1.Session.

It needs TensorFlow and tensorflow_text, but not Keras deserialization, TF Hub or the encoder
SavedModel's 81 functions (the Keras path's cost).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def twin_arrays(model, train_texts: Sequence[str]) -> dict:
    """A BERT model as one frozen GraphDef (strings in, probabilities out; the weights as constants).

    Loading the Keras model rebuilds the encoder from its SavedModel (81 functions turned
    back into graphs) and traces it again for each nested model; a frozen graph has one
    graph and no functions to restore. It still needs TensorFlow and tensorflow_text (the
    WordPiece op), but not hub, Keras deserialization or the model store.
    """
    from textclf._tf import tf
    from textclf.compat import frozen_graph
    from textclf.twins import FORMAT

    function = tf.function(lambda t: model(t, training=False)).get_concrete_function(
        tf.TensorSpec([None], tf.string, name="text"))
    frozen = frozen_graph(function)
    graph = frozen.graph.as_graph_def()
    return {"format": np.array(FORMAT), "kind": np.array("graph"),
            "graph": np.frombuffer(graph.SerializeToString(), np.uint8),
            "input": np.array(frozen.inputs[0].name), "output": np.array(frozen.outputs[0].name)}


class GraphTwin:
    """A frozen GraphDef (`twin_arrays`) run in its own tf.compat.v1.Session, grappler off.

    With the weights now constants, grappler's remapper fuses ops into kernels that round
    differently from the Keras model's (4e-3 on MiniLM's probabilities; 2e-5 without it),
    and its constant folding made the first call take 3.0 s instead of 0.8 s (MiniLM, one
    headline; later calls are as fast either way). A session's config is its own, where
    tf.config.optimizer would change every function of the process.
    """

    traced = True  # checked against the Keras model run as a graph (as `predict` runs more than one batch)

    def __init__(self, a: dict) -> None:
        from textclf._tf import tf

        import tensorflow_text  # noqa: F401  (registers the WordPiece op the graph uses)

        graph_def = tf.compat.v1.GraphDef.FromString(bytes(a["graph"]))
        graph = tf.Graph()
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
        config = tf.compat.v1.ConfigProto()
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        self.session = tf.compat.v1.Session(graph=graph, config=config)
        self.input = graph.get_tensor_by_name(str(a["input"]))
        self.output = graph.get_tensor_by_name(str(a["output"]))

    def __call__(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.session.run(self.output, {self.input: np.array(texts, dtype=object)}), np.float32)
