"""Stage `eval`: score the base model, a few-shot baseline and every checkpoint on the val split
and the general suites, by greedy generation with the prompts formatted exactly as in training.

Writes reports/eval/<model>.json (metrics + per-item records: prompt hash, output, scores) and
reports/eval_by_step.json (one row per checkpoint step, step 0 = base) for `dvc plots`. DPO
checkpoints (models/dpo, when the dpo stage ran) are reported as `dpo-checkpoint-N`, at step
<SFT step they start from> + N so the per-step plot continues after SFT.
Generations are cached (evaluation/cache.py): the base is generated once across experiments and an
unchanged checkpoint is free to re-evaluate."""

from ..cli import run_stage
from ..errors import StageError
from ..evaluation.cache import GenerationCache
from ..evaluation.evaluator import (
    build_eval_set,
    check_backend,
    fewshot_requests,
    generator_factory,
    load_general_items,
    plot_rows,
    print_summary,
    report_path,
    run_eval,
)
from ..io import read_jsonl, write_json
from ..models.loading import load_tokenizer
from ..params import load_params
from ..paths import (
    CHECKPOINTS_MANIFEST,
    DPO_MANIFEST,
    EVAL_CACHE_DIR,
    EVAL_DIR,
    EVAL_PLOT,
    TRAIN_SPLIT,
    VAL_SPLIT,
)
from ..training.checkpoints import manifest_checkpoints


def main() -> None:
    params = load_params()
    check_backend(params.eval)
    checkpoints = manifest_checkpoints(CHECKPOINTS_MANIFEST)
    if not checkpoints:
        raise StageError(f"{CHECKPOINTS_MANIFEST} lists no checkpoints: run train first")
    dpo_checkpoints = manifest_checkpoints(DPO_MANIFEST, required=False)
    if dpo_checkpoints and params.eval.backend == "vllm":
        raise StageError(
            "eval.backend vllm applies one LoRA adapter per model, and a DPO checkpoint is two "
            "stacked on the base: use eval.backend hf, or dpo.enabled false"
        )
    tokenizer = load_tokenizer()
    eval_set = build_eval_set(
        tokenizer,
        read_jsonl(VAL_SPLIT),
        load_general_items(params.eval),
        params.eval,
        loss_rows=(params.train.assistant_turns, params.train.max_length),
    )
    fewshot = fewshot_requests(tokenizer, eval_set.rows, read_jsonl(TRAIN_SPLIT), params)
    cache = GenerationCache(EVAL_CACHE_DIR if params.eval.cache else None)
    generator_for = generator_factory(params.eval, tokenizer)
    reports = run_eval(
        params, eval_set, fewshot, checkpoints + dpo_checkpoints, generator_for, cache
    )
    if params.eval.lm_eval_tasks:
        from ..evaluation.lmeval import add_lm_eval

        # the harness loads one adapter on the base: DPO checkpoints (two stacked) are skipped
        add_lm_eval([r for r in reports if r.get("stage") != "dpo"], params.eval)
    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    for stale in EVAL_DIR.glob("*.json"):
        stale.unlink()
    for report in reports:
        report["split"] = "val"
        report.setdefault("val_loss", None)  # the few-shot baseline has none
        write_json(report_path(report["model"]), report)
        print_summary(report)
    write_json(EVAL_PLOT, plot_rows(reports))


if __name__ == "__main__":
    run_stage("eval", main)
