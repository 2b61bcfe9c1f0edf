"""The eval stage's run (the base, the few-shot baseline and every SFT and DPO checkpoint) and
the eval_rl stage's (every RL checkpoint), generated (or read from the cache) and scored on the
val rows and the general suites."""

import gc
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StageError
from ..io import read_json, read_jsonl
from ..models.loading import load_tokenizer
from ..params import Params
from ..training.checkpoints import manifest_checkpoints
from .backend import GeneratorFor, check_backend, generation_settings, generator_factory
from .cache import GenerationCache
from .eval_set import EvalSet, build_eval_set, fewshot_requests, load_general_items
from .generation import Request
from .lmeval import LmEvalDirs, add_lm_eval
from .metric_names import GENERAL_QA
from .model_report import evaluate_fewshot, evaluate_model, summarise
from .model_run import ModelRun


@dataclass(frozen=True)
class ScoringFiles:
    """What scoring any model reads: the base, the val rows, the suites, the generation cache."""

    base: Path
    val_split: Path
    general_qa_suite: Path
    instruction_suite: Path
    cache: Path


@dataclass(frozen=True)
class EvalFiles:
    """What the eval stage reads besides: the SFT and DPO manifests, the few-shot examples,
    lm-eval's folders."""

    scoring: ScoringFiles
    sft_manifest: Path
    dpo_manifest: Path
    train_split: Path  # the few-shot baseline's examples
    lm_eval: LmEvalDirs


def checkpoint_reports(
    params: Params,
    eval_set: EvalSet,
    checkpoints: list[Path],
    base: dict,
    base_dir: Path,
    generator_for: GeneratorFor,
    cache: GenerationCache,
) -> list[dict]:
    """Each checkpoint's report, with its forgetting measured against the `base` report; a
    model is released before the next one is built."""
    settings = generation_settings(params.eval)
    reports = []
    for checkpoint in checkpoints:
        gc.collect()
        run = ModelRun(checkpoint, base_dir, generator_for, cache, settings)
        reports.append(summarise(evaluate_model(run, eval_set, params.task), params.task, base))
    return reports


def run_eval(
    params: Params,
    eval_set: EvalSet,
    fewshot: list[Request] | None,
    checkpoints: list[Path],
    base_dir: Path,
    generator_for: GeneratorFor,
    cache: GenerationCache,
) -> list[dict]:
    """Reports for the base, the few-shot baseline (when `fewshot` is given) and every
    checkpoint, with metrics."""
    settings = generation_settings(params.eval)
    base_run = ModelRun(None, base_dir, generator_for, cache, settings)
    base = summarise(evaluate_model(base_run, eval_set, params.task), params.task, None)
    reports = [base]
    if fewshot is not None:
        report = evaluate_fewshot(base_run, eval_set, fewshot, params.task)
        reports.append(summarise(report, params.task, None))
    del base_run
    return reports + checkpoint_reports(
        params, eval_set, checkpoints, base, base_dir, generator_for, cache
    )


@dataclass(frozen=True)
class EvalTools:
    """What scoring any model needs: the tokenizer, the val rows and suites, the cache."""

    tokenizer: Any
    eval_set: EvalSet
    cache: GenerationCache
    generator_for: GeneratorFor


def eval_tools(params: Params, files: ScoringFiles) -> EvalTools:
    tokenizer = load_tokenizer(files.base)
    eval_set = build_eval_set(
        tokenizer,
        read_jsonl(files.val_split),
        load_general_items(params.eval, files.general_qa_suite, files.instruction_suite),
        params.eval,
        loss_rows=(params.train.assistant_turns, params.train.max_length),
    )
    cache = GenerationCache(files.cache if params.eval.cache else None)
    return EvalTools(
        tokenizer, eval_set, cache, generator_factory(params.eval, tokenizer, files.base)
    )


def evaluate_checkpoints(params: Params, files: EvalFiles) -> list[dict]:
    """The eval stage's reports: every model scored, with lm-eval's tasks where asked."""
    check_backend(params.eval)
    checkpoints = manifest_checkpoints(files.sft_manifest)
    if not checkpoints:
        raise StageError(f"{files.sft_manifest} lists no checkpoints: run train first")
    dpo_checkpoints = manifest_checkpoints(files.dpo_manifest, required=False)
    if dpo_checkpoints and params.eval.backend == "vllm":
        raise StageError(
            "eval.backend vllm applies one LoRA adapter per model, and a DPO checkpoint is two "
            "stacked on the base: use eval.backend hf, or dpo.enabled false"
        )
    tools = eval_tools(params, files.scoring)
    fewshot = fewshot_requests(
        tools.tokenizer, tools.eval_set.rows, read_jsonl(files.train_split), params
    )
    reports = run_eval(
        params,
        tools.eval_set,
        fewshot,
        checkpoints + dpo_checkpoints,
        files.scoring.base,
        tools.generator_for,
        tools.cache,
    )
    if params.eval.lm_eval_tasks:
        # the harness loads one adapter on the base: DPO checkpoints (two stacked) are skipped
        add_lm_eval([r for r in reports if not r.get("stage")], params.eval, files.lm_eval)
    return reports


def evaluate_rl_checkpoints(
    params: Params, files: ScoringFiles, rl_manifest: Path, base_report: Path
) -> list[dict]:
    """The eval_rl stage's reports: every RL checkpoint in `rl_manifest` scored as eval scores
    the others, its forgetting against the base's report (`base_report`, eval's)."""
    checkpoints = manifest_checkpoints(rl_manifest, required=False)
    if not checkpoints:
        return []
    check_backend(params.eval)
    if not base_report.exists():
        raise StageError(f"{base_report} not found: run `dvc repro eval` first")
    tools = eval_tools(params, files)
    return checkpoint_reports(
        params,
        tools.eval_set,
        checkpoints,
        read_json(base_report),
        files.base,
        tools.generator_for,
        tools.cache,
    )


def print_summary(report: dict) -> None:
    m = report["metrics"]
    general = (
        f"  qa {m['general_qa']:.2f}  if {m['instruction_follow']:.2f}  "
        f"forgetting {m['forgetting_score']:.2f}"
        if GENERAL_QA in m
        else ""
    )
    source = f"{report['seconds']}s" if report["generated"] else "cached"
    print(
        f"eval: {report['model']:>16}  task {m['task_accuracy']:.2f}  "
        f"format {m['format_correct']:.2f}  drift {m['format_drift']:.2f}{general}  ({source})"
    )
