"""models/selected/README.md: a model card for the exported checkpoint (Hugging Face layout:
YAML front matter, then what the model is, how it was made and how far to trust it)."""

from typing import Any

import yaml

from .diagnose import Finding

KNOWN_LIMITS = [
    "Scores come from small, code-scored suites (general QA, verifiable instructions) and the "
    "held-out task rows; they say nothing about safety or about inputs unlike the training data.",
    "Greedy decoding was used for every score; sampling will give other outputs.",
]


def model_card(
    *,
    base: dict[str, Any],
    selected: dict,
    headline: dict,
    train_params: dict,
    data_hashes: dict[str, str],
    findings: list[Finding],
    merged: bool,
) -> str:
    """The card's Markdown. `base` is the base stage's manifest (model id, revision)."""
    front = {
        "base_model": base.get("hub_id") or base.get("source") or base.get("model"),
        "library_name": "peft" if train_params.get("method") != "full" else "transformers",
        "tags": ["fine-tuned", "dvc", str(train_params.get("method"))],
    }
    metric_rows = "\n".join(
        f"| {key} | {value:.3f} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in headline.items()
        if not isinstance(value, list | dict)
    )
    limits = [
        *(f"{f.mode.replace('_', ' ')}: {f.evidence}" for f in findings),
        *KNOWN_LIMITS,
    ]
    files = "adapter_model.safetensors (LoRA) and merged/ (the base with the adapter merged)"
    if not merged:
        files = "the checkpoint's weights (safetensors)"
    return "\n".join(
        [
            "---",
            yaml.safe_dump(front, sort_keys=False).strip(),
            "---",
            "",
            f"# {selected['model']}",
            "",
            f"Fine-tune of `{front['base_model']}`, selected at step {selected['step']} by "
            "held-out val task accuracy under guardrails "
            f"({'passed' if headline.get('guardrails_passed') else 'none passed: best effort'}).",
            f"Files: {files}; tokenizer files alongside. Load with "
            "`PeftModel.from_pretrained(base, 'models/selected')` or "
            "`AutoModelForCausalLM.from_pretrained('models/selected/merged')`.",
            "",
            "## Metrics",
            "",
            "Task metrics on the held-out test split; `val_*`, `general_qa`, "
            "`instruction_follow` and `forgetting_score` on val and the general suites.",
            "",
            "| metric | value |",
            "|---|---|",
            metric_rows,
            "",
            "## Training",
            "",
            "```yaml",
            yaml.safe_dump({"train": train_params}, sort_keys=False).strip(),
            "```",
            "",
            "## Data (sha256 of the splits)",
            "",
            *(f"- {name}: `{digest}`" for name, digest in data_hashes.items()),
            "",
            "## Limitations",
            "",
            *(f"- {item}" for item in limits),
            "",
        ]
    )
