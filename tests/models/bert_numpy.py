"""An independent NumPy BERT forward pass (Hugging Face weight layout) for numerics tests."""

from __future__ import annotations

import math

import numpy as np


def _layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def _gelu(x):
    erf = np.vectorize(math.erf)
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def _linear(x, w, b):  # Hugging Face Linear: weight [out, in]
    return x @ w.T + b


def bert_forward(weights: dict, config: dict, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """sequence_output [batch, time, hidden] in float64."""
    w = {k[5:] if k.startswith("bert.") else k: v.astype(np.float64) for k, v in weights.items()}
    eps = config.get("layer_norm_eps", 1e-12)
    h, heads = config["hidden_size"], config["num_attention_heads"]
    d = h // heads
    b, t = ids.shape
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][np.arange(t)][None]
         + w["embeddings.token_type_embeddings.weight"][np.zeros_like(ids)])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    bias = (1.0 - mask[:, None, None, :].astype(np.float64)) * -1e9
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        split = lambda y: y.reshape(b, t, heads, d).transpose(0, 2, 1, 3)
        q = split(_linear(x, w[p + "attention.self.query.weight"], w[p + "attention.self.query.bias"]))
        k = split(_linear(x, w[p + "attention.self.key.weight"], w[p + "attention.self.key.bias"]))
        v = split(_linear(x, w[p + "attention.self.value.weight"], w[p + "attention.self.value.bias"]))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        probs = scores / scores.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, h)
        attn = _linear(context, w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"])
        x = _layer_norm(
            x + attn, w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps
        )
        inner = _gelu(_linear(x, w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"]))
        out = _linear(inner, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        x = _layer_norm(x + out, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
    return x
