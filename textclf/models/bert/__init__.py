"""BERT encoders (TF Hub, local SavedModels, or Hugging Face checkpoints imported by hf_import.py),
fine-tuned or frozen: a model family.

params.py the parameters and the fine-tuning recipe, model.py the layers and builder, hf_import.py
`textclf models import-hf`, twin.py its twin (one frozen GraphDef). Declared here by name only:
importing this imports no TensorFlow.
"""

from __future__ import annotations

from textclf.models import store
from textclf.models.bert.params import BERT_TRAINING, BertParams
from textclf.registry import Family, ModelEntry, Preset, Registry

_SMALL = "https://tfhub.dev/tensorflow/small_bert/bert_en_uncased_{}/2"


class ImportedBerts:
    """The registry's source of models imported with `textclf models import-hf`: BERTs in the model store."""

    def find(self, name: str, registry: Registry) -> ModelEntry | None:
        path = store.find(name)
        if path is None:
            return None
        base = registry.builtin("bert")
        meta = store.read_meta(path)
        return ModelEntry(
            name,
            f"imported BERT ({_layers(meta)}, hidden {meta.get('hidden_size')}) "
            f"from {meta.get('source')}",
            base.params_cls, base.builder, base.training_defaults, {**base.param_defaults, "encoder": name},
            base.family)

    def names(self) -> list[str]:
        return [m["name"] for m in store.list_models()]


FAMILY = Family(
    name="bert",
    params=BertParams,
    builder="textclf.models.bert.model:build_bert",
    presets=(
        Preset("bert", "Any BERT encoder: a TF Hub handle, a local SavedModel or an imported model (--encoder), "
               "with its preprocessing model.", BERT_TRAINING),
        Preset("bert-tiny", "Tiny BERT (L-2, H-128) from TF Hub, fine-tuned.", BERT_TRAINING,
               {"encoder": _SMALL.format("L-2_H-128_A-2")}),
        Preset("bert-small", "Small BERT (L-4, H-512) from TF Hub, fine-tuned.", BERT_TRAINING,
               {"encoder": _SMALL.format("L-4_H-512_A-8")}),
        Preset("bert-base", "BERT-Base uncased (L-12, H-768) from TF Hub, fine-tuned.", BERT_TRAINING,
               {"encoder": "https://tfhub.dev/tensorflow/bert_en_uncased_L-12_H-768_A-12/4"}),
    ),
    twin="textclf.models.bert.twin:twin_arrays",
    runners={"graph": "textclf.models.bert.twin:GraphTwin"},
    text_ops=True,
    source=ImportedBerts(),
    word_vectors="textclf.models.bert.model:word_vectors",
    # ~16 news texts a batch: MiniLM's twin answers news 2.1x, sentences 1.7x and long texts 1.3x as fast as in
    # batches of 256 texts, whose activations outgrow the caches (bench/predict_batch.py, docs/BENCHMARKS.md)
    predict_tokens=1024,
)


def _layers(meta: dict) -> str:
    """"6 layers", or for an encoder cut by `models import-hf --layers`, "3 of its 6 layers"."""
    kept, source = meta.get("num_layers"), meta.get("source_layers")
    return f"{kept} of its {source} layers" if source not in (None, kept) else f"{kept} layers"
