"""Model builders; the registry entries live in textclf.models.catalog (no TF import)."""
