"""Stage `eval`: score the base model, a few-shot baseline and every checkpoint on the val split
and the general suites, by greedy generation with the prompts formatted exactly as in training.

Writes reports/eval/<model>.json (metrics + per-item records: prompt hash, output, scores) and
reports/eval_by_step.json (one row per checkpoint step, step 0 = base) for `dvc plots`. DPO
checkpoints (models/dpo, when the dpo stage ran) are reported as `dpo-checkpoint-N`, at step
<SFT step they start from> + N so the per-step plot continues after SFT.
Generations are cached (evaluation/cache.py): the base is generated once across experiments and an
unchanged checkpoint is free to re-evaluate."""

from ..cli import run_stage
from ..evaluation.checkpoint_eval import (
    EvalFiles,
    ScoringFiles,
    evaluate_checkpoints,
    print_summary,
)
from ..evaluation.lmeval import LmEvalDirs
from ..evaluation.reports import plot_rows, write_reports
from ..io import write_json
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    CHECKPOINTS_MANIFEST,
    DPO_MANIFEST,
    EVAL_CACHE_DIR,
    EVAL_DIR,
    EVAL_PLOT,
    GENERAL_QA_SUITE,
    INSTRUCTION_SUITE,
    LM_EVAL_CACHE_DIR,
    LM_EVAL_TASKS_DIR,
    TRAIN_SPLIT,
    VAL_SPLIT,
)

FILES = EvalFiles(
    scoring=ScoringFiles(
        base=BASE_MODEL_DIR,
        val_split=VAL_SPLIT,
        general_qa_suite=GENERAL_QA_SUITE,
        instruction_suite=INSTRUCTION_SUITE,
        cache=EVAL_CACHE_DIR,
    ),
    sft_manifest=CHECKPOINTS_MANIFEST,
    dpo_manifest=DPO_MANIFEST,
    train_split=TRAIN_SPLIT,
    lm_eval=LmEvalDirs(BASE_MODEL_DIR, CHECKPOINTS_DIR, LM_EVAL_TASKS_DIR, LM_EVAL_CACHE_DIR),
)


def main() -> None:
    params = load_params()
    reports = evaluate_checkpoints(params, FILES)
    write_reports(reports, EVAL_DIR)
    for report in reports:
        print_summary(report)
    write_json(EVAL_PLOT, plot_rows(reports))


if __name__ == "__main__":
    run_stage("eval", main)
