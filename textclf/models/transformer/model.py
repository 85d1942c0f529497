"""The from-scratch Transformer classifier (the lesson's architecture, masked, any length)."""

from __future__ import annotations

import numpy as np

from textclf import task
from textclf._tf import keras, tf
from textclf.models.base import PACKAGE, BuiltModel, GraphLayer, SequenceIds, max_length_from_data
from textclf.models.limits import MAX_SEQUENCE
from textclf.models.transformer.params import TransformerParams


@keras.saving.register_keras_serializable(package=PACKAGE)
class TokenAndPositionEmbedding(GraphLayer):
    """Token embedding + learned position embedding; id 0 is padding and is masked."""

    def __init__(self, vocab_size: int, max_length: int, embed_dim: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.vocab_size, self.max_length, self.embed_dim = vocab_size, max_length, embed_dim
        self.token_emb = keras.layers.Embedding(vocab_size, embed_dim, name="token")
        self.pos_emb = keras.layers.Embedding(max_length, embed_dim, name="position")

    def call(self, ids: tf.Tensor) -> tf.Tensor:
        positions = tf.range(tf.shape(ids)[-1])
        return self.token_emb(ids) + self.pos_emb(positions)

    def compute_mask(self, ids: tf.Tensor, mask=None) -> tf.Tensor:
        return tf.not_equal(ids, 0)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size,
                "max_length": self.max_length, "embed_dim": self.embed_dim}


@keras.saving.register_keras_serializable(package=PACKAGE)
class TransformerBlock(GraphLayer):
    """Post-norm self-attention + feed-forward block; padding is masked out of attention."""

    def __init__(self, embed_dim: int, num_heads: int, ff_dim: int, dropout: float = 0.1,
                 key_dim: int = 0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.embed_dim, self.num_heads, self.ff_dim, self.dropout = embed_dim, num_heads, ff_dim, dropout
        self.key_dim = key_dim or embed_dim  # the lesson gives every head the full embed_dim
        self.supports_masking = True
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=self.key_dim, name="attn")
        self.ffn1 = keras.layers.Dense(ff_dim, activation="relu", name="ffn_1")
        self.ffn2 = keras.layers.Dense(embed_dim, name="ffn_2")
        self.norm1 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_1")
        self.norm2 = keras.layers.LayerNormalization(epsilon=1e-6, name="norm_2")
        self.drop1 = keras.layers.Dropout(dropout)
        self.drop2 = keras.layers.Dropout(dropout)

    def call(self, x: tf.Tensor, training=None, mask=None) -> tf.Tensor:
        # Key mask only, built from ints: boolean slicing has no TFLite kernel, and padded
        # query rows are ignored by the masked pooling anyway. tf.identity drops the
        # Keras mask so attention does not derive the boolean query mask itself.
        attention_mask = None if mask is None else tf.cast(tf.expand_dims(tf.cast(mask, tf.int32), 1), tf.bool)
        x = tf.identity(x)
        attended = self.att(x, x, attention_mask=attention_mask, training=training)
        x = self.norm1(x + self.drop1(attended, training=training))
        ff = self.ffn2(self.ffn1(x))
        return self.norm2(x + self.drop2(ff, training=training))

    def compute_mask(self, x, mask=None):
        return mask

    def get_config(self) -> dict:
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads,
                "ff_dim": self.ff_dim, "dropout": self.dropout, "key_dim": self.key_dim}


def build_transformer(
    params: TransformerParams, *, num_classes: int, train_texts: np.ndarray, multilabel: bool = False
) -> BuiltModel:
    """Adapt the vocabulary on the training texts and build the classifier."""
    # The lesson's tokenization: lower-case, strip punctuation, split on whitespace, in-graph.
    # Ragged ids: a batch holding one very long text is not padded to it before the cut to max_length.
    vectorizer = keras.layers.TextVectorization(max_tokens=params.vocab_size, ragged=True, name="vectorizer")
    # A tf.string tensor from Python strings: numpy's astype(str) would pad every text to the longest.
    texts = tf.data.Dataset.from_tensor_slices(tf.constant([str(t) for t in train_texts], dtype=tf.string))
    vectorizer.adapt(texts.batch(1024))
    vocab_size = vectorizer.vocabulary_size()
    notes = []
    if not params.max_length:
        counts = np.concatenate([vectorizer(batch).row_lengths().numpy() for batch in texts.batch(4096)])
        params, notes = max_length_from_data(params, counts, MAX_SEQUENCE, "token counts")
    fit_length = SequenceIds(params.max_length, name="sequence_ids")

    text_in = keras.Input(shape=(), dtype=tf.string, name="text")
    text_to_ids = keras.Model(text_in, fit_length(vectorizer(text_in)), name="text_to_ids")

    ids = keras.Input(shape=(None,), dtype=tf.int64, name="token_ids")
    embedding = TokenAndPositionEmbedding(vocab_size, params.max_length, params.embed_dim, name="embedding")
    x = embedding(ids)
    for i in range(params.num_layers):
        x = TransformerBlock(params.embed_dim, params.num_heads, params.ff_dim, params.dropout,
                             key_dim=params.key_dim, name=f"transformer_{i}")(x)
    x = keras.layers.GlobalAveragePooling1D(name="mean_pool")(x)
    x = keras.layers.Dropout(params.dropout)(x)
    x = keras.layers.Dense(params.hidden_dim, activation="relu", name="hidden")(x)
    x = keras.layers.Dropout(params.dropout)(x)
    probs = keras.layers.Dense(num_classes, activation=task.activation(multilabel), dtype="float32", name="probs")(x)
    model = keras.Model(ids, probs, name="transformer")

    def encode(batch: tf.Tensor) -> tf.RaggedTensor:
        return fit_length.ragged(vectorizer(batch))

    return BuiltModel(model=model, encode=encode, text_to_ids=text_to_ids, params=params, notes=notes,
                      # ids 0 and 1 are padding and out-of-vocabulary: no word's vector
                      word_embeddings=(["", ""] + vectorizer.get_vocabulary()[2:], embedding.token_emb.embeddings))
