"""Scoring models by generation, for the eval stage (val) and select (test): the eval set
built from the val split and the general suites, a ModelRun per model that generates (or
reads the cache) and scores, the few-shot baseline, and the per-model reports.
"""

import gc
import importlib.util
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.chat import fewshot_prompt, prompt_token_ids, target_text, user_prompt
from ..data.masking import AssistantTurns, ChatEncoder, Encoded
from ..errors import StageError
from ..io import content_hash, read_json
from ..models.loading import (
    SFT_POINTER,
    adapter_stack,
    has_gpu,
    load_for_inference,
    use_bf16,
)
from ..params import EvalParams, Params, TaskParams
from ..paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    CHECKPOINTS_MANIFEST,
    DPO_DIR,
    DPO_MANIFEST,
    EVAL_DIR,
    GENERAL_QA_SUITE,
    INSTRUCTION_SUITE,
)
from ..training.checkpoints import checkpoint_step
from .cache import GenerationCache, cache_key, loss_key, weights_digest
from .generation import (
    Generator,
    HFGenerator,
    Request,
    VLLMGenerator,
    base_generation_config,
    stop_token_ids,
)
from .scoring import (
    forgetting_score,
    instruction_failures,
    mean,
    regressions,
    score_qa_item,
    score_task_item,
    task_metrics,
)
from .suites import load_suite
from .val_loss import cut, val_loss

BASE = "base"
FEWSHOT = "fewshot"
DPO_PREFIX = "dpo-"
GENERAL_SUITES = ("general_qa", "instruction_follow")
PLOTTED = (
    "task_accuracy",
    "task_score",
    "format_correct",
    "format_drift",
    "general_qa",
    "instruction_follow",
)

GeneratorFor = Callable[[Path | None], Generator]
"""Builds the generator of one model: None is the base, a path is a checkpoint."""


@dataclass(frozen=True)
class EvalSet:
    """The prompts of one eval run as token ids, built once and shared by every model."""

    rows: list[dict]
    task: list[Request]
    general_items: list[tuple[str, dict]]  # (suite, item)
    general: list[Request]
    val: tuple[Encoded, ...] = ()  # the val rows as trained (prompt + answer): the val loss


def load_general_items(params: EvalParams) -> list[tuple[str, dict]]:
    qa = load_suite(GENERAL_QA_SUITE)[: params.general_qa_limit]
    instructions = load_suite(INSTRUCTION_SUITE)[: params.instruction_limit]
    return [("general_qa", item) for item in qa] + [
        ("instruction_follow", item) for item in instructions
    ]


def task_requests(tokenizer, prompts: Sequence, max_new_tokens: int) -> list[Request]:
    return [Request(tuple(prompt_token_ids(tokenizer, p)), max_new_tokens) for p in prompts]


def build_eval_set(
    tokenizer,
    rows: list[dict],
    general_items: list[tuple[str, dict]],
    params: EvalParams,
    loss_rows: tuple[AssistantTurns, int] | None = None,
) -> EvalSet:
    """QA and instruction items go in one request list (each with its own token budget), so
    they share batches. `loss_rows` (train.assistant_turns, train.max_length): the val rows
    are also encoded as the trainer encodes them, for the val loss."""
    budget = {
        "general_qa": params.max_new_tokens_qa,
        "instruction_follow": params.max_new_tokens_instruction,
    }
    general = [
        Request(
            tuple(prompt_token_ids(tokenizer, user_prompt(item.get("question") or item["prompt"]))),
            budget[suite],
        )
        for suite, item in general_items
    ]
    task = task_requests(tokenizer, [r["prompt"] for r in rows], params.max_new_tokens_task)
    val: tuple[Encoded, ...] = ()
    if loss_rows is not None:
        turns, max_length = loss_rows
        chats = [r["prompt"] + r["completion"] for r in rows]
        val = tuple(cut(ChatEncoder(tokenizer, turns)(chats), max_length))
    return EvalSet(rows, task, general_items, general, val)


def fewshot_examples(train_rows: list[dict], k: int, seed: int) -> list[dict]:
    """k task rows of train (replay rows are general data, not the task), the same for
    every val row, drawn with the run's seed."""
    task_rows = [row for row in train_rows if row.get("origin") != "replay"]
    ordered = sorted(task_rows, key=lambda row: row["id"])
    return random.Random(seed).sample(ordered, min(k, len(ordered)))


def fewshot_requests(
    tokenizer, rows: list[dict], train_rows: list[dict], params: Params
) -> list[Request] | None:
    """The few-shot baseline's requests for `rows` (None when eval.fewshot_k is 0): each
    row's prompt after the same k solved train examples."""
    if not params.eval.fewshot_k:
        return None
    examples = fewshot_examples(train_rows, params.eval.fewshot_k, params.seed)
    prompts = [fewshot_prompt(row["prompt"], examples) for row in rows]
    return task_requests(tokenizer, prompts, params.eval.max_new_tokens_task)


def prompt_hash(request: Request) -> str:
    return content_hash(list(request.prompt_ids))[:12]


def score_task(
    rows: list[dict], requests: list[Request], outputs: list[str], task: TaskParams
) -> list[dict]:
    return [
        {
            "id": row["id"],
            "prompt_hash": prompt_hash(request),
            "output": output,
            **score_task_item(output, target_text(row), task),
        }
        for row, request, output in zip(rows, requests, outputs, strict=True)
    ]


def score_general(eval_set: EvalSet, outputs: list[str]) -> dict[str, list[dict]]:
    scored: dict[str, list[dict]] = {suite: [] for suite in GENERAL_SUITES}
    for (suite, item), request, output in zip(
        eval_set.general_items, eval_set.general, outputs, strict=True
    ):
        record = {"id": item["id"], "prompt_hash": prompt_hash(request), "output": output}
        if suite == "general_qa":
            record["correct"] = score_qa_item(output, item)
        else:
            record["failed_checks"] = instruction_failures(output, item)
            record["correct"] = not record["failed_checks"]
        scored[suite].append(record)
    return scored


def correct_by_id(report: dict) -> dict[str, bool]:
    return {
        f"{suite}/{item['id']}": item["correct"]
        for suite in GENERAL_SUITES
        for item in report["items"][suite]
    }


def summarise(report: dict, task: TaskParams, base_report: dict | None) -> dict:
    """Attach metrics to a report; forgetting is measured against `base_report`."""
    items = report["items"]
    metrics = task_metrics(items["task"], task)
    if "general_qa" in items:
        metrics["general_qa"] = mean([i["correct"] for i in items["general_qa"]])
        metrics["instruction_follow"] = mean([i["correct"] for i in items["instruction_follow"]])
        base_correct = correct_by_id(base_report or report)
        metrics["forgetting_score"] = forgetting_score(base_correct, correct_by_id(report))
        report["regressions"] = regressions(base_correct, correct_by_id(report))
    report["metrics"] = metrics
    return report


class ModelRun:
    """One model's generations: served from the cache where possible, the model itself is
    only built on the first miss."""

    def __init__(self, checkpoint: Path | None, generator_for: GeneratorFor, cache, settings):
        parts = [BASE_MODEL_DIR, *adapter_stack(checkpoint)]
        self.checkpoint = checkpoint
        self.digest = weights_digest(parts)
        self.generator_for = generator_for
        self.cache = cache
        self.settings = settings
        self.generator: Generator | None = None
        self.generated = 0
        self.seconds = 0.0

    def outputs(self, requests: list[Request], desc: str) -> list[str]:
        key = cache_key(self.digest, requests, self.settings)
        cached = self.cache.get(key, len(requests))
        if cached is not None:
            return cached
        started = time.perf_counter()
        outputs = self.built()(requests, desc)
        self.seconds += time.perf_counter() - started
        self.generated += len(requests)
        self.cache.put(key, outputs)
        return outputs

    def val_loss(self, rows: tuple[Encoded, ...]) -> float | None:
        """The model's val loss on `rows` (val_loss.py), cached like the outputs; None where
        the generator holds no transformers model (eval.backend vllm)."""
        if not rows:
            return None
        key = loss_key(self.digest, rows, self.settings)
        cached = self.cache.get(key, 1)
        if cached is not None:
            return cached[0]
        started = time.perf_counter()
        generator = self.built()
        model = getattr(generator, "model", None)
        if model is None:
            return None
        loss = val_loss(model, rows, generator.pad_id)
        self.seconds += time.perf_counter() - started
        self.cache.put(key, [loss])
        return loss

    def built(self) -> Generator:
        """The model's generator, built (the model loaded) on the first cache miss."""
        if self.generator is None:
            self.generator = self.generator_for(self.checkpoint)
        return self.generator

    def stamp(self, report: dict) -> dict:
        """Record the generation time and count since the last stamp."""
        report["seconds"] = round(self.seconds, 1)
        report["generated"] = self.generated  # 0: every output came from the cache
        self.seconds, self.generated = 0.0, 0
        return report


def is_dpo(checkpoint: Path) -> bool:
    """A DPO checkpoint names the SFT checkpoint it is stacked on."""
    return (checkpoint / SFT_POINTER).exists()


def model_name(checkpoint: Path | None) -> str:
    """Report name: base, checkpoint-N (SFT) or dpo-checkpoint-N (DPO)."""
    if checkpoint is None:
        return BASE
    return DPO_PREFIX + checkpoint.name if is_dpo(checkpoint) else checkpoint.name


def model_step(checkpoint: Path | None) -> int:
    """Training step of a model; a DPO checkpoint's continues from its SFT checkpoint's."""
    if checkpoint is None:
        return 0
    start = read_json(checkpoint / SFT_POINTER)["step"] if is_dpo(checkpoint) else 0
    return start + checkpoint_step(checkpoint.name)


def checkpoint_dir(name: str) -> Path:
    """Where the checkpoint a report is named after lives (the inverse of model_name)."""
    if name.startswith(DPO_PREFIX):
        return DPO_DIR / name.removeprefix(DPO_PREFIX)
    return CHECKPOINTS_DIR / name


def checkpoint_manifest(name: str) -> Path:
    """The manifest that records the checkpoint a report is named after."""
    return DPO_MANIFEST if name.startswith(DPO_PREFIX) else CHECKPOINTS_MANIFEST


def evaluate_model(run: ModelRun, eval_set: EvalSet, task: TaskParams) -> dict:
    """Generate (or fetch) and score one model on the task rows and the general suites."""
    name = model_name(run.checkpoint)
    task_outputs = run.outputs(eval_set.task, f"{name} task")
    general_outputs = run.outputs(eval_set.general, f"{name} general")
    items = {"task": score_task(eval_set.rows, eval_set.task, task_outputs, task)}
    items.update(score_general(eval_set, general_outputs))
    report = {"model": name, "role": "checkpoint" if run.checkpoint else "base"}
    report["step"] = model_step(run.checkpoint)
    dpo = run.checkpoint is not None and is_dpo(run.checkpoint)
    if dpo:
        report["stage"] = "dpo"
    report["items"] = items
    # a DPO checkpoint's loss (a preference loss) is not comparable with SFT's val loss
    report["val_loss"] = None if dpo else run.val_loss(eval_set.val)
    return run.stamp(report)


def evaluate_fewshot(run: ModelRun, eval_set: EvalSet, requests: list[Request], task) -> dict:
    """The base model with solved train examples in its prompt: what fine-tuning must beat
    to be worth it."""
    outputs = run.outputs(requests, "few-shot task")
    report = {"model": FEWSHOT, "role": "fewshot", "step": 0}
    report["items"] = {"task": score_task(eval_set.rows, requests, outputs, task)}
    return run.stamp(report)


def load_for_generation(checkpoint: Path | None, params: EvalParams):
    """The base (None) or a checkpoint, merged, in eval mode and the eval precision."""
    return load_for_inference(checkpoint, params.bf16)


def check_backend(params: EvalParams) -> None:
    """Fail before any work when the chosen backend or an optional extra cannot run here."""
    if params.backend == "vllm" and not has_gpu():
        raise StageError("eval.backend vllm needs a CUDA GPU; use eval.backend: hf here")
    needed = {"vllm": params.backend == "vllm", "lm_eval": bool(params.lm_eval_tasks)}
    extras = {"vllm": "vllm", "lm_eval": "lm-eval"}
    for module, wanted in needed.items():
        if wanted and importlib.util.find_spec(module) is None:
            raise StageError(
                f"eval settings need the {extras[module]} extra: "
                f"pip install -e '.[{extras[module]}]'"
            )


def generator_factory(params: EvalParams, tokenizer) -> GeneratorFor:
    if params.backend == "vllm":
        config = base_generation_config(BASE_MODEL_DIR)
        vllm = VLLMGenerator(BASE_MODEL_DIR, stop_token_ids(config, tokenizer))

        def for_vllm(checkpoint: Path | None) -> Generator:
            vllm.use_adapter(checkpoint, checkpoint_step(checkpoint.name) + 1 if checkpoint else 0)
            return vllm

        return for_vllm

    def for_hf(checkpoint: Path | None) -> Generator:
        return HFGenerator(load_for_generation(checkpoint, params), tokenizer, params.batch_size)

    return for_hf


def generation_settings(params: EvalParams) -> dict:
    """The eval settings that change outputs (the cache key adds code and library versions)."""
    return {
        "backend": params.backend,
        "bf16": use_bf16(params.bf16),
        "batch_size": params.batch_size,
    }


def with_val_losses(log_history: list[dict], reports: list[dict]) -> list[dict]:
    """The trainer's log history (train loss) with the val loss eval measured for the base
    (step 0) and each SFT checkpoint added as `eval_loss` entries, as a trainer's own val
    passes would log them: the loss curves of the diagnosis and the report read both."""
    val = [
        {"step": r["step"], "eval_loss": r["val_loss"]}
        for r in reports
        if r.get("val_loss") is not None and r["role"] != "fewshot" and r.get("stage") != "dpo"
    ]
    return sorted([*log_history, *val], key=lambda entry: entry["step"])


def plot_rows(reports: list[dict]) -> list[dict]:
    return [
        {
            "step": r["step"],
            "val_loss": r["val_loss"],
            **{k: r["metrics"].get(k) for k in (*PLOTTED, "forgetting_score")},
        }
        for r in reports
        if r["role"] != "fewshot"
    ]


def report_path(name: str) -> Path:
    return EVAL_DIR / f"{name}.json"


ROLE_ORDER = {"base": 0, "fewshot": 1, "checkpoint": 2}


def load_reports() -> list[dict]:
    """Eval reports: base, few-shot, then checkpoints by step."""
    reports = [read_json(path) for path in EVAL_DIR.glob("*.json")]
    return sorted(reports, key=lambda r: (ROLE_ORDER[r["role"]], r["step"]))


def run_eval(
    params: Params,
    eval_set: EvalSet,
    fewshot: list[Request] | None,
    checkpoints: list[Path],
    generator_for: GeneratorFor,
    cache: GenerationCache,
) -> list[dict]:
    """Reports for the base, the few-shot baseline (when `fewshot` is given) and every
    checkpoint, with metrics; a model is released before the next one is built."""
    settings = generation_settings(params.eval)
    base_run = ModelRun(None, generator_for, cache, settings)
    base = summarise(evaluate_model(base_run, eval_set, params.task), params.task, None)
    reports = [base]
    if fewshot is not None:
        report = evaluate_fewshot(base_run, eval_set, fewshot, params.task)
        reports.append(summarise(report, params.task, None))
    del base_run
    for checkpoint in checkpoints:
        gc.collect()
        run = ModelRun(checkpoint, generator_for, cache, settings)
        reports.append(summarise(evaluate_model(run, eval_set, params.task), params.task, base))
    return reports


def print_summary(report: dict) -> None:
    m = report["metrics"]
    general = (
        f"  qa {m['general_qa']:.2f}  if {m['instruction_follow']:.2f}  "
        f"forgetting {m['forgetting_score']:.2f}"
        if "general_qa" in m
        else ""
    )
    source = f"{report['seconds']}s" if report["generated"] else "cached"
    print(
        f"eval: {report['model']:>16}  task {m['task_accuracy']:.2f}  "
        f"format {m['format_correct']:.2f}  drift {m['format_drift']:.2f}{general}  ({source})"
    )


def score_on_test(
    run: ModelRun, requests: list, rows: list[dict], params: Params, name: str | None = None
) -> dict:
    """A test report, shaped as the eval reports but with task items only: `name` (default:
    the model's), per-item records and metrics. Generations are cached as in eval."""
    name = name or model_name(run.checkpoint)
    items = score_task(rows, requests, run.outputs(requests, f"{name} test"), params.task)
    metrics = task_metrics(items, params.task)
    return {"model": name, "split": "test", "items": {"task": items}, "metrics": metrics}
