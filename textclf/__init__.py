"""textclf: text-classification experiments on the TensorFlow stack."""

__version__ = "0.1.0"
