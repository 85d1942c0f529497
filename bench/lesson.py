"""The reference lesson's recipes, as written (../shared/docs/seed/transformers-lesson.tr.md).

Only the data loading differs: instead of `tfds.load("ag_news_subset")` each recipe gets the
same in-memory examples textclf trains on, as a tf.data dataset of (text, label) pairs; the
lesson's `tupelize` built exactly those from the title and description. The lesson's
`tf.keras` is Keras 2, i.e. `tf_keras` here. Each function returns the training seconds
(training batches only, validation excluded), eval accuracy and what the FLOP count needs.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from textclf._tf import keras, tf
from textclf.training import TrainTimer


class TokenAndPositionEmbedding(keras.layers.Layer):
    def __init__(self, maxlen, vocab_size, embed_dim):
        super(TokenAndPositionEmbedding, self).__init__()
        self.token_emb = keras.layers.Embedding(input_dim=vocab_size, output_dim=embed_dim)
        self.pos_emb = keras.layers.Embedding(input_dim=maxlen, output_dim=embed_dim)
        self.maxlen = maxlen

    def call(self, x):
        maxlen = self.maxlen
        positions = tf.range(start=0, limit=maxlen, delta=1)
        positions = self.pos_emb(positions)
        x = self.token_emb(x)
        return x + positions


class TransformerBlock(keras.layers.Layer):
    def __init__(self, embed_dim, num_heads, ff_dim, rate=0.1):
        super(TransformerBlock, self).__init__()
        self.att = keras.layers.MultiHeadAttention(num_heads=num_heads, key_dim=embed_dim, name="attn")
        self.ffn = keras.Sequential(
            [keras.layers.Dense(ff_dim, activation="relu"), keras.layers.Dense(embed_dim)]
        )
        self.layernorm1 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.layernorm2 = keras.layers.LayerNormalization(epsilon=1e-6)
        self.dropout1 = keras.layers.Dropout(rate)
        self.dropout2 = keras.layers.Dropout(rate)

    def call(self, inputs, training):
        attn_output = self.att(inputs, inputs)
        attn_output = self.dropout1(attn_output, training=training)
        out1 = self.layernorm1(inputs + attn_output)
        ffn_output = self.ffn(out1)
        ffn_output = self.dropout2(ffn_output, training=training)
        return self.layernorm2(out1 + ffn_output)


def _datasets(train, evaluation):
    ds_train = tf.data.Dataset.from_tensor_slices((train.texts.astype(str), train.labels)).cache()
    ds_test = tf.data.Dataset.from_tensor_slices((evaluation.texts.astype(str), evaluation.labels)).cache()
    return ds_train, ds_test


def transformer(train, evaluation, *, epochs: int, seed: int) -> dict:
    """Lesson cells 1-5: TextVectorization(20000, pad 256), embed 32, 2 heads, ff 32, Adam, batch 128."""
    keras.utils.set_random_seed(seed)
    embed_dim, num_heads, ff_dim, maxlen, vocab_size = 32, 2, 32, 256, 20000
    ds_train, ds_test = _datasets(train, evaluation)
    model = keras.models.Sequential([
        keras.layers.TextVectorization(max_tokens=vocab_size, output_sequence_length=maxlen, input_shape=(1,)),
        TokenAndPositionEmbedding(maxlen, vocab_size, embed_dim),
        TransformerBlock(embed_dim, num_heads, ff_dim),
        keras.layers.GlobalAveragePooling1D(),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(20, activation="relu"),
        keras.layers.Dropout(0.1),
        keras.layers.Dense(len(train.label_names), activation="softmax"),
    ])
    model.layers[0].adapt(ds_train.map(lambda text, label: text))
    model.compile(loss="sparse_categorical_crossentropy", metrics=["acc"], optimizer="adam")
    timer = TrainTimer()
    model.fit(ds_train.batch(128), validation_data=ds_test.batch(128), epochs=epochs, callbacks=[timer], verbose=0)
    _, acc = model.evaluate(ds_test.batch(128), verbose=0)
    start = time.perf_counter()  # token counts for the FLOP estimate: not part of the recipe
    ids = model.layers[0](tf.constant(train.texts.astype(str)[:, None])).numpy()
    return {"train_seconds": timer.train_seconds, "eval_accuracy": float(acc), "epochs": epochs,
            "analysis_seconds": time.perf_counter() - start,
            "token_lengths": (ids != 0).sum(axis=1), "padded_length": maxlen,
            "variables": model.trainable_variables, "frozen_variables": []}


def bert(train, evaluation, *, preprocess: Path, encoder: Path, finetune: bool, seed: int) -> dict:
    """Lesson cells 7-12: hub preprocessing (pad 128) -> BERT -> pooled_output -> dropout -> dense.

    Frozen: Adam, batch 128, one `fit`. Fine-tune (as the lesson does it, after the frozen
    fit): encoder trainable, `create_optimizer(3e-5, adamw)` with warmup over 10% of
    3 * len(ds_train) steps, batch 128, one more `fit` — only this one is timed.
    """
    import tensorflow_hub as hub
    import tensorflow_text  # noqa: F401
    from official.nlp import optimization

    keras.utils.set_random_seed(seed)
    ds_train, ds_test = _datasets(train, evaluation)
    vectorizer = hub.KerasLayer(str(preprocess))
    bert_layer = hub.KerasLayer(str(encoder))
    inp = keras.Input(shape=(), dtype=tf.string)
    x = vectorizer(inp)
    x = bert_layer(x)
    x = keras.layers.Dropout(0.1)(x["pooled_output"])
    out = keras.layers.Dense(len(train.label_names), activation="softmax")(x)
    model = keras.models.Model(inp, out)
    bert_layer.trainable = False
    model.compile(loss="sparse_categorical_crossentropy", metrics=["acc"], optimizer="adam")
    timer = TrainTimer()
    model.fit(ds_train.batch(128), validation_data=ds_test.batch(128), callbacks=[timer], verbose=0)
    if finetune:
        bert_layer.trainable = True
        epochs = 3
        n = len(train)  # the lesson's len(ds_train): examples, not batches
        opt = optimization.create_optimizer(init_lr=3e-5, num_train_steps=epochs * n,
                                            num_warmup_steps=0.1 * epochs * n, optimizer_type="adamw")
        model.compile(loss="sparse_categorical_crossentropy", metrics=["acc"], optimizer=opt)
        timer = TrainTimer()
        model.fit(ds_train.batch(128), validation_data=ds_test.batch(128), callbacks=[timer], verbose=0)
    _, acc = model.evaluate(ds_test.batch(128), verbose=0)
    start = time.perf_counter()  # token counts for the FLOP estimate: not part of the recipe
    masks = np.concatenate([vectorizer(tf.constant(train.texts[i:i + 1024].astype(str)))["input_mask"].numpy()
                            for i in range(0, len(train), 1024)])
    encoder_vars = bert_layer.variables
    return {
        "train_seconds": timer.train_seconds,
        "eval_accuracy": float(acc),
        "epochs": 1,
        "analysis_seconds": time.perf_counter() - start,
        "token_lengths": masks.sum(axis=1),
        "padded_length": masks.shape[1],
        "variables": encoder_vars if finetune else [],
        "frozen_variables": [] if finetune else encoder_vars,
    }


