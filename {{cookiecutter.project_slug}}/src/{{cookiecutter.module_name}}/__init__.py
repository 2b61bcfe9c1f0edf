"""Reproducible fine-tuning pipeline: one module per DVC stage plus shared helpers."""

import os

# Imported before any stage imports huggingface_hub (which reads this once): TRL and
# transformers would otherwise send usage telemetry to the Hub from every training run.
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
