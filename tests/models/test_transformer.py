"""The transformer: padding does not change predictions; a saved run reloads by itself."""

import subprocess
import sys

import numpy as np

from textclf._tf import keras, tf
from textclf.models.transformer.params import TransformerParams
from textclf.models.transformer.model import build_transformer

TEXTS = np.array(["Stocks rally as oil falls", "Team wins the cup final in extra time",
                  "New chip doubles battery life", "Talks resume"], dtype=object)


def _built(**kw):
    keras.utils.set_random_seed(0)
    params = TransformerParams(vocab_size=100, max_length=12, embed_dim=8, num_heads=2, ff_dim=8, **kw)
    return build_transformer(params, num_classes=3, train_texts=TEXTS)


def test_prediction_does_not_depend_on_batch_padding():
    model = _built().inference_model()
    alone = model(tf.constant(["Talks resume"])).numpy()
    padded = model(tf.constant(["Talks resume", "Team wins the cup final in extra time again and again"])).numpy()
    np.testing.assert_allclose(alone[0], padded[0], atol=1e-6)
    np.testing.assert_allclose(alone.sum(), 1.0, atol=1e-5)


def test_encoder_truncates_cleans_and_never_returns_empty_rows():
    built = _built()
    ids = built.encode(tf.constant(["word " * 40, "!!!", "Oil, prices!"]))
    lengths = ids.row_lengths().numpy().tolist()
    assert lengths[0] == 12 and lengths[1] == 1
    vocab = built.text_to_ids.get_layer("vectorizer").get_vocabulary()
    assert [vocab[i] for i in ids[2].numpy()][:1] == ["oil"]


def test_saved_model_reloads_in_a_fresh_process(tmp_path):
    model = _built(num_layers=2).inference_model()
    expected = model(tf.constant(["Stocks rally"])).numpy()
    model.save(tmp_path / "model.keras")
    code = (
        "import textclf.models.transformer.model, numpy as np\n"
        "from textclf._tf import keras, tf\n"
        f"m = keras.models.load_model({str(tmp_path / 'model.keras')!r}, compile=False)\n"
        "print(' '.join(map(str, m(tf.constant(['Stocks rally'])).numpy()[0])))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    np.testing.assert_allclose(np.array(out.split(), dtype=float), expected[0], atol=1e-6)
