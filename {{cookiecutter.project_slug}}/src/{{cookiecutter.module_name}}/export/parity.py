"""Export parity: the task eval's first test rows, generated greedily by every export with its
own tokenizer and chat template, compared with the model as eval scored it.

An export passes when its prompts tokenize to the training prompts, and its task accuracy and
its stop rate (answers that end with the end-of-turn token before the token budget) are within
`tolerance` of the reference's. Agreement (identical answers) is reported, not required: a
quantised export may word an answer differently and still be right."""

import logging
from dataclasses import dataclass
from pathlib import Path
from statistics import mean

import gguf
import torch

from ..evaluation.eval_set import task_requests
from ..evaluation.generation import HFGenerator, Request
from ..evaluation.model_report import score_task
from ..evaluation.scoring import task_metrics
from ..models.loading import SAFE_LOADING
from ..params import TaskParams
from ..selection.guardrails import ranking_metric
from .gguf import llama_cpp_stop_ids, transformers_config, transformers_reads_tokenizer


@dataclass(frozen=True)
class Generations:
    """What one export answered on the parity rows."""

    requests: list[Request]
    outputs: list[str]
    stopped: list[bool]


def load_export(path: Path, dtype: torch.dtype, reference: tuple | None = None):
    """(model, tokenizer) of a merged directory or a .gguf file, in eval mode and `dtype` for
    computing. A GGUF file is read as llama.cpp reads it where transformers' GGUF loader can
    be made to: its weights dequantised into the architecture of `reference` (config,
    tokenizer), as transformers' loader drops settings llama.cpp keeps (Gemma's attention
    scale and local RoPE base, Qwen3's head size); generation stops on every token llama.cpp
    stops on; and the file's own tokenizer, except where transformers rebuilds it unlike
    llama.cpp (Phi-3's), for which the training tokenizer stands in."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not path.is_file():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype, **SAFE_LOADING)
        tokenizer = AutoTokenizer.from_pretrained(path, **SAFE_LOADING)
    else:  # GGUF: no safetensors to insist on
        config, tokenizer = reference or (None, None)
        extra = {"gguf_file": path.name, "trust_remote_code": False}
        model = AutoModelForCausalLM.from_pretrained(
            path.parent, dtype=dtype, config=transformers_config(path, config), **extra
        )
        reader = gguf.GGUFReader(path)
        model.generation_config.eos_token_id = sorted(llama_cpp_stop_ids(reader))
        if tokenizer is None or transformers_reads_tokenizer(reader):
            tokenizer = gguf_tokenizer(path, extra, fallback=tokenizer)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model.eval(), tokenizer


def gguf_tokenizer(path: Path, extra: dict, fallback=None):
    """transformers' rebuild of a GGUF file's tokenizer; where it has no builder for that
    vocabulary (Gemma 3's byte-fallback vocabulary written as BPE raises "Token out of
    vocabulary"), the training tokenizer `fallback` stands in, with a warning: llama.cpp still
    reads the file's own."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(path.parent, **extra)
    except Exception as error:  # the tokenizers library raises bare Exceptions
        if fallback is None:
            raise
        logging.warning(
            "transformers cannot rebuild the tokenizer of %s (%s): parity uses the training "
            "tokenizer for it",
            path.name,
            str(error).splitlines()[0][:120],
        )
        return fallback


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
