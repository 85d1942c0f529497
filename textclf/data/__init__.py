"""Data sources (tfds, csv/tsv, jsonl, the shipped sample) and the shared tf.data pipeline."""
