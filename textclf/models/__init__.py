"""Model families (one folder each: ngram/, transformer/, bert/), what their builders share (base.py),
the model store of imported encoders (store.py) and loading a run's model (saving.py). The families
are registered by textclf.models.catalog (no TF import)."""
