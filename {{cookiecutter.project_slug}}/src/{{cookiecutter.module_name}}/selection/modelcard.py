"""models/selected/README.md: the model card of the exported checkpoint, a huggingface_hub
`ModelCard`. Its metadata (the YAML header the Hub indexes) comes from `ModelCardData`: the
base model and how this model derives from it, the license chosen at bake time, the data, and
the eval results as a `model-index`. Its body, built from document.py blocks like the reports,
says what the model is, how it was selected, how far to trust it and how it was made.

The model-index holds point estimates only: `EvalResult` has no field for an interval
(`verified` is set by the Hub's own evaluation service, `source` names where a result was
published), so the intervals (Wilson's for 0/1 scores, the bootstrap's for graded ones) are
in the body's metrics table."""

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ..document import Block, Bullets, Code, Heading, Para, Table, to_markdown
from ..evaluation.metric_names import (
    EXACT_MATCH,
    FORGETTING_SCORE,
    FORMAT_CORRECT,
    FORMAT_DRIFT,
    GENERAL_QA,
    GENERAL_SUITES,
    INSTRUCTION_FOLLOW,
    TASK_ACCURACY,
    TASK_SCORE,
    interval_text,
)
from ..models.loading import SFT_EXPORT
from .diagnose import Finding

PROJECT = "{{ cookiecutter.project_slug }}"
LICENSE = "{{ cookiecutter.license }}"  # chosen at bake time, as in the project's LICENSE file
HUB_LICENSES = {"MIT": "mit", "Apache-2.0": "apache-2.0", "BSD-3-Clause": "bsd-3-clause"}
"""The Hub's ids of the licenses a bake offers; any other is `other`, linked to LICENSE."""
EMBEDDED_HUB_IDS = {"embedded:smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
"""The Hub model each embedded base (models/hub.py) is a GGUF quantisation of."""
DATASET = f"{PROJECT}-data"
"""The card's name for this project's data (data/splits, tracked by DVC; not on the Hub)."""
SUITES = f"{PROJECT}-general-suites"
"""The card's name for the general suites (data/suites) that measure forgetting."""
TASK = {"task_type": "text-generation", "task_name": "Text Generation"}

# metrics.json key -> (where it was measured, metric id, the name the Hub shows)
EVALUATED = {
    TASK_ACCURACY: ("test", "accuracy", "Test task accuracy"),
    TASK_SCORE: ("test", "task_score", "Test task score"),
    EXACT_MATCH: ("test", "exact_match", "Test exact match"),
    FORMAT_CORRECT: ("test", "format_correct", "Test format correct"),
    FORMAT_DRIFT: ("test", "format_drift", "Test format drift"),
    "val_task_accuracy": ("val", "accuracy", "Val task accuracy"),
    "val_task_score": ("val", "task_score", "Val task score"),
    GENERAL_QA: ("general_qa", "accuracy", "General QA accuracy"),
    INSTRUCTION_FOLLOW: ("instruction_follow", "accuracy", "Instruction following"),
    FORGETTING_SCORE: ("general", "forgetting_score", "Forgetting vs the base"),
}

KNOWN_LIMITS = [
    "Scores come from small, code-scored suites (general QA, verifiable instructions) and the "
    "held-out task rows; they say nothing about safety or about inputs unlike the training data.",
    "Greedy decoding was used for every score; sampling will give other outputs.",
]


def hub_base_id(base: dict[str, Any]) -> str | None:
    """The base model's Hub id (None for a local model): a pinned hub id, or the model an
    embedded GGUF was quantised from."""
    if base.get("hub_id"):
        return base["hub_id"]
    return EMBEDDED_HUB_IDS.get(base.get("name") or base.get("model", ""))


def base_text(base: dict[str, Any]) -> str:
    """The base model as the body describes it."""
    hub_id = hub_base_id(base)
    if hub_id is None:
        return f"the local model `{base.get('source') or base.get('model')}` (not on the Hub)"
    if base.get("kind") == "hub":
        return f"`{hub_id}` at revision `{base['revision']}`"
    embedded = base.get("name") or base.get("model")
    if embedded in EMBEDDED_HUB_IDS:
        gguf = base.get("gguf", "GGUF file")
        return f"`{hub_id}` (`{embedded}`: its {gguf} dequantised to float32)"
    return f"`{hub_id}`"


def license_fields(license_name: str) -> dict[str, str]:
    """`license` (a Hub id); a license the Hub does not know is `other`, named and linked."""
    if license_name in HUB_LICENSES:
        return {"license": HUB_LICENSES[license_name]}
    return {"license": "other", "license_name": license_name.lower(), "license_link": "LICENSE"}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def eval_results(headline: dict, data_hashes: dict[str, str]) -> list[EvalResult]:
    """The headline metrics measured on this model, as model-index entries; a split's sha256
    is its dataset revision (the exact rows scored)."""
    splits = {
        split: {
            "dataset_type": DATASET,
            "dataset_name": f"{PROJECT} data",
            "dataset_split": split,
            "dataset_revision": data_hashes.get(split),
        }
        for split in ("test", "val")
    }
    suites = {
        suite: {"dataset_type": SUITES, "dataset_name": f"{suite} suite", "dataset_config": suite}
        for suite in GENERAL_SUITES
    }
    # forgetting counts the items of both suites the base got right
    suites["general"] = {"dataset_type": SUITES, "dataset_name": "general suites"}
    datasets = splits | suites
    return [
        EvalResult(
            **TASK,
            **datasets[where],
            metric_type=metric,
            metric_name=pretty,
            metric_value=round(headline[key], 4),
        )
        for key, (where, metric, pretty) in EVALUATED.items()
        if is_number(headline.get(key))
    ]


def card_data(
    base: dict[str, Any], headline: dict, train_params: dict, data_hashes: dict[str, str]
) -> ModelCardData:
    """The card's metadata."""
    base_id = hub_base_id(base)
    adapter = train_params.get("method") != "full"
    return ModelCardData(
        base_model=base_id,
        library_name="peft" if adapter else "transformers",
        pipeline_tag="text-generation",
        tags=["fine-tuned", "dvc", str(train_params.get("method"))],
        datasets=[DATASET],
        model_name=PROJECT,
        eval_results=eval_results(headline, data_hashes) or None,
        # the Hub reads base_model_relation only next to a base_model
        base_model_relation=("adapter" if adapter else "finetune") if base_id else None,
        **license_fields(LICENSE),
    )


def metric_rows(headline: dict) -> list[list[Any]]:
    """One row per metric; a metric with `<name>_lo`/`_hi` keys shows them in brackets."""
    rows = []
    for key, value in headline.items():
        bound = key.endswith(("_lo", "_hi")) and key[:-3] in headline
        if bound or isinstance(value, list | dict):
            continue
        if interval := interval_text(headline, key):
            value = f"{value:.3f}{interval}"
        rows.append([key, value])
    return rows


def verdict_blocks(passed: bool, failures: Sequence[str], findings: list[Finding]) -> list[Block]:
    """The guardrail verdict and the diagnosis of the run."""
    verdict = (
        "The selected checkpoint passes the guardrails (`select`: forgetting, format, general QA "
        "against the base)."
        if passed
        else "**No checkpoint passed the guardrails**: this is the best-effort checkpoint, "
        "exported and marked `guardrails_passed: false`"
        + (f" ({'; '.join(failures)})." if failures else ".")
    )
    diagnosis = (
        Bullets([f"{f.mode.replace('_', ' ')}: {f.evidence}" for f in findings])
        if findings
        else Para(
            "The diagnosis found no overfitting, forgetting, format drift, contamination or "
            "underfitting."
        )
    )
    return [Heading("Guardrails and diagnosis"), Para(verdict), diagnosis]


@dataclass(frozen=True)
class CardFacts:
    """What the card states: `base` is the base stage's manifest (model id, revision) over
    `base.model`; `failures` are the guardrails the selected checkpoint broke; `exports` the
    export stage's formats; `split_report` the file `data_hashes` were read from."""

    base: dict[str, Any]
    selected: dict
    headline: dict
    train_params: dict
    data_hashes: dict[str, str]
    findings: list[Finding]
    exports: Sequence[str] = ()
    failures: Sequence[str] = ()
    split_report: Path | None = None


def body_blocks(facts: CardFacts) -> list[Block]:
    base, selected, headline = facts.base, facts.selected, facts.headline
    train_params, data_hashes = facts.train_params, facts.data_hashes
    passed = bool(headline.get("guardrails_passed"))
    guardrails = "passed" if passed else "none passed: best effort"
    adapter = train_params.get("method") != "full"
    files = "adapter_model.safetensors (LoRA)" if adapter else "the model's weights (safetensors)"
    load = (
        "`PeftModel.from_pretrained(base, 'models/selected')`"
        if adapter
        else "`AutoModelForCausalLM.from_pretrained('models/selected')`"
    )
    if selected.get("stage"):  # dpo or rl: an adapter on top of the SFT one
        files = (
            f"a LoRA adapter trained by the {selected['stage']} stage on top of the SFT adapter "
            f"in `{SFT_EXPORT}/`"
        )
        load = (
            "`models.loading.load_model_with_adapter(Path('models/selected'), base_dir)` "
            "(the SFT adapter merged into the base, then this one), or the merged export"
        )
    made = {
        "merged": "`models/export/merged` (the adapter merged into the base, safetensors)",
        "gguf": "`models/export/gguf` (GGUF for llama.cpp, with an Ollama Modelfile)",
    }
    exported = [made[name] for name in facts.exports if name in made]
    return [
        Heading(PROJECT, 1),
        Para(
            f"Fine-tune of {base_text(base)}: checkpoint `{selected['model']}`, selected at step "
            f"{selected['step']} by held-out val task accuracy under guardrails ({guardrails})."
        ),
        Para(
            f"Files: {files}; tokenizer files alongside. Load with {load}."
            + (f" The export stage also wrote {' and '.join(exported)}." if exported else "")
        ),
        Heading("Metrics"),
        Para(
            "Task metrics on the held-out test split; `val_*`, `general_qa`, "
            "`instruction_follow` and `forgetting_score` on val and the general suites; "
            "`vs_*_diff` the paired difference from a baseline on the same test items. In "
            "brackets: the interval at `select.confidence` (Wilson's score interval for "
            "shares of 0/1 items, Tango's for their paired differences, a bootstrap for the "
            "graded task score); `*_mdd` the smallest difference from the base each suite can "
            "detect. The card's metadata (model-index) repeats this model's point estimates, "
            "without the intervals."
        ),
        Table(["metric", "value"], metric_rows(headline)),
        *verdict_blocks(passed, facts.failures, facts.findings),
        Heading("Training"),
        Code(yaml.safe_dump({"train": train_params}, sort_keys=False), "yaml"),
        Heading("Data (sha256 of the splits)"),
        Para(f"`{DATASET}`: this project's data/splits, versioned with DVC (not on the Hub)."),
        Bullets([f"{name}: `{digest}`" for name, digest in data_hashes.items()])
        if data_hashes
        else Para(
            f"No {facts.split_report or 'split report'}: the splits were not made by the "
            "`split` stage."
        ),
        Heading("Limitations"),
        Bullets(KNOWN_LIMITS),
    ]


def model_card(facts: CardFacts) -> ModelCard:
    """The card (`.save(path)` writes it)."""
    data = card_data(facts.base, facts.headline, facts.train_params, facts.data_hashes)
    body = body_blocks(facts)
    # the body holds no images, so no path in it is relative to where the card is saved
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{to_markdown(body, Path())}")
