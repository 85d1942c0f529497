"""Import a Hugging Face BERT checkpoint (safetensors, no PyTorch) into textclf's model store.

The weights become a Model Garden `BertEncoder`, exported with
`official.nlp.tools.export_tfhub_lib` as TF-Hub-format encoder and preprocessing
SavedModels, so an imported NAME works wherever a TF Hub BERT handle does.
Everything is written to a temporary folder and renamed into place last: a failed import
leaves nothing behind.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from textclf._tf import tf  # before official.*: selects legacy Keras first
from textclf import runs
from textclf.errors import ModelError
from textclf.models import store
from textclf.textfiles import read_json_object

REQUIRED_FILES = ("config.json", "model.safetensors", "vocab.txt")
_LAYER = re.compile(r"encoder\.layer\.(\d+)\.")  # a transformer layer's tensor, and its index
ACTIVATIONS = {"gelu": "textclf>exact_gelu", "relu": "relu", "gelu_new": "gelu", "gelu_pytorch_tanh": "gelu"}


def read_hf_config(src: Path) -> dict:
    """Validate the checkpoint folder and return its config.json."""
    if not src.is_dir():
        raise ModelError(f"checkpoint directory not found: {src}")
    missing = [f for f in REQUIRED_FILES if not (src / f).is_file()]
    if missing:
        hint = (" (PyTorch .bin checkpoints are not read; save with safetensors)"
                if "model.safetensors" in missing else "")
        raise ModelError(f"{src} is not a Hugging Face BERT checkpoint: missing {', '.join(missing)}{hint}")
    config = read_json_object(src / "config.json", what="config.json")
    model_type = config.get("model_type")
    if model_type != "bert":
        raise ModelError(f"{src}: model_type is {model_type!r}; only BERT checkpoints (model_type 'bert') "
                         "can be imported")
    if config.get("hidden_act", "gelu") not in ACTIVATIONS:
        raise ModelError(f"{src}: hidden_act {config.get('hidden_act')!r} is not supported ({', '.join(ACTIVATIONS)})")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ModelError(f"{src}: position_embedding_type {config['position_embedding_type']!r} is not supported")
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size"):
        if not isinstance(config.get(key), int) or config[key] <= 0:
            raise ModelError(f"{src}/config.json: {key} must be a positive integer, got {config.get(key)!r}")
    if config["hidden_size"] % config["num_attention_heads"]:
        raise ModelError(f"{src}/config.json: hidden_size is not a multiple of num_attention_heads")
    vocab = (src / "vocab.txt").read_text(encoding="utf-8", errors="replace").splitlines()
    if len(set(vocab)) != len(vocab):
        raise ModelError(f"{src}/vocab.txt has duplicate tokens")
    if len(vocab) > config["vocab_size"] or "[CLS]" not in vocab or "[SEP]" not in vocab:
        raise ModelError(f"{src}/vocab.txt does not fit config.json (needs at most vocab_size={config['vocab_size']} "
                         "lines, with [CLS] and [SEP])")
    return config


def load_hf_weights(src: Path, config: dict) -> dict[str, np.ndarray]:
    """Read model.safetensors, drop a `bert.` prefix and check every tensor's shape."""
    from safetensors.numpy import load_file

    try:
        raw = load_file(str(src / "model.safetensors"))
    except Exception as err:
        raise ModelError(f"{src}/model.safetensors is unreadable ({str(err).splitlines()[0]})") from None
    weights = {(k[5:] if k.startswith("bert.") else k): v for k, v in raw.items()}
    # An encoder cut by --layers: the layers above are dropped here, before the cast
    weights = {k: v for k, v in weights.items()
               if not (layer := _LAYER.match(k)) or int(layer.group(1)) < config["num_hidden_layers"]}
    for name, shape in expected_shapes(config).items():
        if name not in weights:
            raise ModelError(f"{src}/model.safetensors has no tensor {name!r} (is it a BertModel checkpoint?)")
        if tuple(weights[name].shape) != shape:
            raise ModelError(f"{src}/model.safetensors: {name} has shape {tuple(weights[name].shape)}, "
                             f"config.json implies {shape}")
    return {k: v.astype(np.float32) for k, v in weights.items()}


def expected_shapes(config: dict) -> dict[str, tuple[int, ...]]:
    h, inner = config["hidden_size"], config["intermediate_size"]
    shapes = {
        "embeddings.word_embeddings.weight": (config["vocab_size"], h),
        "embeddings.position_embeddings.weight": (config.get("max_position_embeddings", 512), h),
        "embeddings.token_type_embeddings.weight": (config.get("type_vocab_size", 2), h),
        "embeddings.LayerNorm.weight": (h,), "embeddings.LayerNorm.bias": (h,),
    }
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        for part in ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"):
            shapes[p + part + ".weight"], shapes[p + part + ".bias"] = (h, h), (h,)
        shapes[p + "intermediate.dense.weight"], shapes[p + "intermediate.dense.bias"] = (inner, h), (inner,)
        shapes[p + "output.dense.weight"], shapes[p + "output.dense.bias"] = (h, inner), (h,)
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            shapes[p + norm + ".weight"], shapes[p + norm + ".bias"] = (h,), (h,)
    return shapes


def garden_weights(hf: dict[str, np.ndarray], config: dict) -> dict[str, np.ndarray]:
    """Hugging Face tensor names/layouts -> Model Garden BertEncoder variable names/layouts."""
    h, heads = config["hidden_size"], config["num_attention_heads"]
    d = h // heads
    out = {
        "word_embeddings/embeddings": hf["embeddings.word_embeddings.weight"],
        "position_embedding/embeddings": hf["embeddings.position_embeddings.weight"],
        "type_embeddings/embeddings": hf["embeddings.token_type_embeddings.weight"],
        "embeddings/layer_norm/gamma": hf["embeddings.LayerNorm.weight"],
        "embeddings/layer_norm/beta": hf["embeddings.LayerNorm.bias"],
    }
    for i in range(config["num_hidden_layers"]):
        p, g = f"encoder.layer.{i}.", f"transformer/layer_{i}/"
        for hf_name, g_name in (("query", "query"), ("key", "key"), ("value", "value")):
            w, b = hf[f"{p}attention.self.{hf_name}.weight"], hf[f"{p}attention.self.{hf_name}.bias"]
            out[f"{g}self_attention/{g_name}/kernel"] = w.T.reshape(h, heads, d)  # [out,in] -> [in,heads,d]
            out[f"{g}self_attention/{g_name}/bias"] = b.reshape(heads, d)
        kernel = hf[f"{p}attention.output.dense.weight"].T
        out[f"{g}self_attention/attention_output/kernel"] = kernel.reshape(heads, d, h)
        out[f"{g}self_attention/attention_output/bias"] = hf[f"{p}attention.output.dense.bias"]
        out[f"{g}self_attention_layer_norm/gamma"] = hf[f"{p}attention.output.LayerNorm.weight"]
        out[f"{g}self_attention_layer_norm/beta"] = hf[f"{p}attention.output.LayerNorm.bias"]
        out[f"{g}intermediate/kernel"] = hf[f"{p}intermediate.dense.weight"].T
        out[f"{g}intermediate/bias"] = hf[f"{p}intermediate.dense.bias"]
        out[f"{g}output/kernel"] = hf[f"{p}output.dense.weight"].T
        out[f"{g}output/bias"] = hf[f"{p}output.dense.bias"]
        out[f"{g}output_layer_norm/gamma"] = hf[f"{p}output.LayerNorm.weight"]
        out[f"{g}output_layer_norm/beta"] = hf[f"{p}output.LayerNorm.bias"]
    if "pooler.dense.weight" in hf:
        out["pooler_transform/kernel"] = hf["pooler.dense.weight"].T
        out["pooler_transform/bias"] = hf["pooler.dense.bias"]
    return out


def encoder_config(config: dict):
    """The Model Garden EncoderConfig equivalent to a Hugging Face BERT config."""
    from official.nlp.configs import encoders

    import textclf.models.bert.model  # noqa: F401  (registers textclf>exact_gelu)

    return encoders.EncoderConfig(type="bert", bert=encoders.BertEncoderConfig(
        vocab_size=config["vocab_size"], hidden_size=config["hidden_size"],
        num_layers=config["num_hidden_layers"], num_attention_heads=config["num_attention_heads"],
        intermediate_size=config["intermediate_size"],
        hidden_activation=ACTIVATIONS[config.get("hidden_act", "gelu")],
        dropout_rate=float(config.get("hidden_dropout_prob", 0.1)),
        attention_dropout_rate=float(config.get("attention_probs_dropout_prob", 0.1)),
        max_position_embeddings=config.get("max_position_embeddings", 512),
        type_vocab_size=config.get("type_vocab_size", 2),
        initializer_range=float(config.get("initializer_range", 0.02)),
    ))


def do_lower_case(src: Path) -> bool:
    path = src / "tokenizer_config.json"
    if path.is_file():
        return bool(read_json_object(path, what="tokenizer_config.json").get("do_lower_case", True))
    return True


def import_hf(src: str | Path, name: str, *, overwrite: bool = False, seq_length: int = 128,
              layers: int | None = None, say: Callable[[str], None] = lambda step: None) -> Path:
    """Convert the checkpoint in `src` and install it in the store as `name`; return its folder.
    `layers`: keep only the checkpoint's first `layers` transformer layers (a smaller, faster encoder, e.g. a
    distillation student: dropping the top layers keeps most of a fine-tuned BERT's accuracy, Sajjad et al.
    2020, "On the effect of dropping layers of pre-trained transformer models").
    `say(step)`: the name of each step as it starts (exporting a base-size encoder takes minutes)."""
    src = Path(src).expanduser()
    if not store.NAME_RE.match(name) or len(name) > 100:  # a folder name: 255 bytes on most file systems
        shown = name if len(name) <= 60 else name[:57] + "..."
        raise ModelError(f"bad model name {shown!r}: use at most 100 letters, digits, '.', '_' and '-'")
    if layers is not None and layers < 1:
        raise ModelError(f"--layers must be at least 1, got {layers}")
    if layers is not None and layers > (of := read_hf_config(src)["num_hidden_layers"]):
        raise ModelError(f"--layers {layers}: {src} has {of} layers")  # before the store is touched
    from textclf.models.catalog import MODELS

    if name in MODELS.builtin_names():
        raise ModelError(f"{name!r} is a built-in model name; choose another --name")
    target = store.models_dir() / name
    if target.exists() and not overwrite:
        raise ModelError(f"model {name!r} already exists in {target.parent}; pass --overwrite to replace it")
    tmp = store.prepare(name)  # a store that is a file or read-only fails here, before any reading
    try:
        return _convert(src, name, target, tmp, seq_length, layers, say)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _convert(src: Path, name: str, target: Path, tmp: Path, seq_length: int, layers: int | None, say) -> Path:
    config = read_hf_config(src)
    of = config["num_hidden_layers"]
    if layers is not None:  # (checked against `of` by import_hf)
        config = {**config, "num_hidden_layers": layers}
    lower = do_lower_case(src)
    say(f"reading the weights in {src}")
    hf = load_hf_weights(src, config)

    from official.nlp.configs import encoders
    from official.nlp.tools import export_tfhub_lib

    say("building the encoder and copying its weights")
    enc_cfg = encoder_config(config)
    encoder = encoders.build_encoder(enc_cfg)
    dummy = tf.ones((1, 4), tf.int32)
    encoder(dict(input_word_ids=dummy, input_mask=dummy, input_type_ids=tf.zeros_like(dummy)))
    values = garden_weights(hf, config)
    for var in encoder.weights:
        key = var.name.split(":")[0]
        if key in values:
            var.assign(values[key])
        elif not key.startswith("pooler_transform/"):
            raise ModelError(f"{src}: no weights for encoder variable {key}")
    ckpt = tf.train.Checkpoint(encoder=encoder).save(str(tmp / "ckpt" / "encoder"))
    vocab = str(src / "vocab.txt")
    say("exporting the encoder as a SavedModel")
    export_tfhub_lib.export_model(str(tmp / "encoder"), encoder_config=enc_cfg, model_checkpoint_path=ckpt,
                                  with_mlm=False, vocab_file=vocab, do_lower_case=lower)
    say("exporting the preprocessing model")
    export_tfhub_lib.export_preprocessing(str(tmp / "preprocess"), vocab_file=vocab, do_lower_case=lower,
                                          tokenize_with_offsets=False,
                                          default_seq_length=min(seq_length,
                                                                 config.get("max_position_embeddings", 512)))
    shutil.rmtree(tmp / "ckpt")
    meta = {"name": name, "kind": "bert", "source": str(src.resolve()), "imported": runs.timestamp(),
            "hidden_size": config["hidden_size"], "num_layers": config["num_hidden_layers"], "source_layers": of,
            "num_attention_heads": config["num_attention_heads"], "vocab_size": config["vocab_size"],
            "max_position_embeddings": config.get("max_position_embeddings", 512),
            "do_lower_case": lower, "has_pooler": "pooler.dense.weight" in hf,
            "encoder": "encoder", "preprocessor": "preprocess"}
    (tmp / store.META).write_text(json.dumps(meta, indent=2) + "\n")
    if target.exists():
        shutil.rmtree(target)
    tmp.replace(target)
    return target
