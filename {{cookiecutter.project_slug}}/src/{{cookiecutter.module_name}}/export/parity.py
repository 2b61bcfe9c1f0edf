"""Export parity: the task eval's first test rows, generated greedily by every export with its
own tokenizer and chat template, compared with the model as eval scored it.

An export passes when its prompts tokenize to the training prompts, and its task accuracy and
its stop rate (answers that end with the end-of-turn token before the token budget) are within
`tolerance` of the reference's. Agreement (identical answers) is reported, not required: a
quantised export may word an answer differently and still be right."""

from dataclasses import dataclass
from pathlib import Path
from statistics import mean

import torch

from ..evaluation.evaluator import score_task, task_requests
from ..evaluation.generation import HFGenerator, Request
from ..evaluation.scoring import task_metrics
from ..params import TaskParams
from ..selection.guardrails import ranking_metric
from ..training.modeling import SAFE_LOADING


@dataclass(frozen=True)
class Generations:
    """What one export answered on the parity rows."""

    requests: list[Request]
    outputs: list[str]
    stopped: list[bool]


def load_export(path: Path, dtype: torch.dtype):
    """(model, tokenizer) of a merged directory or a .gguf file (dequantised by transformers'
    GGUF loader), in eval mode and `dtype` for computing."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if path.is_file():  # GGUF: no safetensors to insist on
        where, extra = path.parent, {"gguf_file": path.name, "trust_remote_code": False}
    else:
        where, extra = path, SAFE_LOADING
    model = AutoModelForCausalLM.from_pretrained(where, dtype=dtype, **extra)
    tokenizer = AutoTokenizer.from_pretrained(where, **extra)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def generate(model, tokenizer, prompts: list, max_new_tokens: int, batch_size: int, name: str):
    """Greedy answers to `prompts` through the eval's own decoding, and whether each stopped."""
    requests = task_requests(tokenizer, prompts, max_new_tokens)
    generator = HFGenerator(model, tokenizer, batch_size)
    generated = generator.token_ids(requests, f"{name} parity")
    stops = set(generator.stops)
    return Generations(
        requests=requests,
        outputs=[generator.decode(tokens) for tokens in generated],
        stopped=[bool(tokens) and tokens[-1] in stops for tokens in generated],
    )


def parity_row(
    rows: list[dict], run: Generations, reference: Generations, task: TaskParams
) -> dict:
    """One export's figures on the parity rows, next to the reference's."""
    metric = ranking_metric(task)
    items = score_task(rows, run.requests, run.outputs, task)
    return {
        metric: round(task_metrics(items, task)[metric], 4),
        "stop_rate": round(mean(run.stopped), 4),
        "agreement": round(
            mean(a == b for a, b in zip(run.outputs, reference.outputs, strict=True)), 4
        ),
        "same_prompts": run.requests == reference.requests,
    }


def parity_failures(row: dict, reference: dict, metric: str, tolerance: float) -> list[str]:
    """Why an export's row breaks parity with the reference row (empty: it passes)."""
    failures = []
    if not row["same_prompts"]:
        failures.append("its tokenizer/chat template gives other prompt tokens than training")
    for key in (metric, "stop_rate"):
        drop = reference[key] - row[key]
        if drop > tolerance:
            failures.append(
                f"{key} {row[key]} is {drop:.3f} below the reference's {reference[key]}"
            )
    return failures
