"""models/selected/README.md: a model card for the exported checkpoint (Hugging Face layout:
YAML front matter, then what the model is, how it was made and how far to trust it)."""

from typing import Any

import yaml

from ..document import Block, Bullets, Code, FrontMatter, Heading, Para, Table
from ..paths import SPLIT_REPORT
from .diagnose import Finding

KNOWN_LIMITS = [
    "Scores come from small, code-scored suites (general QA, verifiable instructions) and the "
    "held-out task rows; they say nothing about safety or about inputs unlike the training data.",
    "Greedy decoding was used for every score; sampling will give other outputs.",
]


def metric_rows(headline: dict) -> list[list[Any]]:
    """One row per metric; a metric with `<name>_lo`/`_hi` keys shows them in brackets."""
    rows = []
    for key, value in headline.items():
        bound = key.endswith(("_lo", "_hi")) and key[:-3] in headline
        if bound or isinstance(value, list | dict):
            continue
        if f"{key}_lo" in headline:
            value = f"{value:.3f} [{headline[key + '_lo']:.3f}, {headline[key + '_hi']:.3f}]"
        rows.append([key, value])
    return rows


def model_card(
    *,
    base: dict[str, Any],
    selected: dict,
    headline: dict,
    train_params: dict,
    data_hashes: dict[str, str],
    findings: list[Finding],
    merged: bool,
) -> list[Block]:
    """The card's blocks. `base` is the base stage's manifest (model id, revision)."""
    front = {
        "base_model": base.get("hub_id") or base.get("source") or base.get("model"),
        "library_name": "peft" if train_params.get("method") != "full" else "transformers",
        "tags": ["fine-tuned", "dvc", str(train_params.get("method"))],
    }
    guardrails = "passed" if headline.get("guardrails_passed") else "none passed: best effort"
    files = "adapter_model.safetensors (LoRA) and merged/ (the base with the adapter merged)"
    if not merged:
        files = "the checkpoint's weights (safetensors)"
    limits = [
        *(f"{f.mode.replace('_', ' ')}: {f.evidence}" for f in findings),
        *KNOWN_LIMITS,
    ]
    return [
        FrontMatter(front),
        Heading(selected["model"], 1),
        Para(
            f"Fine-tune of `{front['base_model']}`, selected at step {selected['step']} by "
            f"held-out val task accuracy under guardrails ({guardrails})."
        ),
        Para(
            f"Files: {files}; tokenizer files alongside. Load with "
            "`PeftModel.from_pretrained(base, 'models/selected')` or "
            "`AutoModelForCausalLM.from_pretrained('models/selected/merged')`."
        ),
        Heading("Metrics"),
        Para(
            "Task metrics on the held-out test split; `val_*`, `general_qa`, "
            "`instruction_follow` and `forgetting_score` on val and the general suites; "
            "`vs_*_diff` the paired difference from a baseline on the same test items. In "
            "brackets: the bootstrap interval (`select.confidence`)."
        ),
        Table(["metric", "value"], metric_rows(headline)),
        Heading("Training"),
        Code(yaml.safe_dump({"train": train_params}, sort_keys=False), "yaml"),
        Heading("Data (sha256 of the splits)"),
        Bullets([f"{name}: `{digest}`" for name, digest in data_hashes.items()])
        if data_hashes
        else Para(f"No {SPLIT_REPORT}: the splits were not made by the `split` stage."),
        Heading("Limitations"),
        Bullets(limits),
    ]
