"""Optional: lm-evaluation-harness tasks on the base and every checkpoint (the `lm-eval`
extra). Task names are the harness's own (`hellaswag`, `arc_easy`, ...) or YAML tasks of
your own under data/lm_eval/. Scores land in each eval report under `lm_eval` and as
`lm_eval/<task>/<metric>` metrics; the harness caches its model calls under .cache/lm_eval.

The harness reads task data through `datasets`: on an offline machine the data must already
be in the Hugging Face cache (or be local files referenced by your YAML tasks).
"""

from dataclasses import dataclass
from pathlib import Path

from ..errors import StageError
from ..models.loading import base_source, has_gpu
from ..params import EvalParams
from .cache import weights_digest


@dataclass(frozen=True)
class LmEvalDirs:
    """Where the harness finds the models and your YAML tasks, and caches its model calls."""

    base: Path
    checkpoints: Path
    tasks: Path
    cache: Path


def model_args(checkpoint: Path | None, base_dir: Path) -> str:
    """The harness's `hf` model: the base (the materialised dir, or a hub id at its pinned
    revision) with the LoRA adapter on top, safe loading."""
    source, extra = base_source(base_dir)
    args = [f"pretrained={source}", *(f"{key}={value}" for key, value in extra.items())]
    args += ["dtype=float32", "trust_remote_code=False"]
    if checkpoint is not None:
        args.append(f"peft={checkpoint}")
    return ",".join(args)


def flat_metrics(results: dict) -> dict[str, float]:
    """{'arc_easy': {'acc,none': 0.5, 'alias': ...}} -> {'lm_eval/arc_easy/acc': 0.5}.
    Metrics are the 'name,filter' keys; 'alias', 'sample_len' and stderrs are left out."""
    flat = {}
    for task, values in results.items():
        for key, value in values.items():
            metric, comma, _filter = key.partition(",")
            if comma and isinstance(value, int | float) and not metric.endswith("_stderr"):
                flat[f"lm_eval/{task}/{metric}"] = round(float(value), 4)
    return flat


def run_tasks(checkpoint: Path | None, params: EvalParams, dirs: LmEvalDirs) -> dict[str, float]:
    try:
        import lm_eval
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise StageError(
            "eval.lm_eval_tasks needs the lm-eval extra: pip install -e '.[lm-eval]'"
        ) from None
    include = str(dirs.tasks) if dirs.tasks.is_dir() else None
    parts = [dirs.base] + ([checkpoint] if checkpoint else [])
    output = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args(checkpoint, dirs.base),
        tasks=list(params.lm_eval_tasks),
        limit=params.lm_eval_limit,
        batch_size=params.batch_size,
        device="cuda" if has_gpu() else "cpu",  # the harness assumes CUDA otherwise
        use_cache=str(dirs.cache / weights_digest(parts)[:16]),
        task_manager=TaskManager(include_path=include),
    )
    return flat_metrics(output["results"])


def add_lm_eval(reports: list[dict], params: EvalParams, dirs: LmEvalDirs) -> None:
    """Run the harness for the base and each checkpoint report (not the few-shot one)."""
    for report in reports:
        if report["role"] == "fewshot":
            continue
        checkpoint = dirs.checkpoints / report["model"] if report["role"] == "checkpoint" else None
        scores = run_tasks(checkpoint, params, dirs)
        report["lm_eval"] = scores
        report["metrics"].update(scores)
