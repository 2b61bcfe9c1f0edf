"""Stage `eval_rl`: score the rl stage's checkpoints as eval scores the others.

rl starts from the SFT checkpoint chosen on eval's reports, so its checkpoints are scored in a
stage of their own, after it: the same val rows, suites, generation settings and cache, and
forgetting measured against eval's base report. Writes reports/eval_rl/rl-checkpoint-N.json
(at step <SFT step it starts from> + N); select reads them next to reports/eval/. With rl off
there are no RL checkpoints, and the folder holds off.txt saying so."""

from ..cli import run_stage
from ..evaluation.checkpoint_eval import ScoringFiles, evaluate_rl_checkpoints, print_summary
from ..evaluation.model_names import BASE
from ..evaluation.reports import report_path, write_reports
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    EVAL_CACHE_DIR,
    EVAL_DIR,
    GENERAL_QA_SUITE,
    INSTRUCTION_SUITE,
    RL_EVAL_DIR,
    RL_EVAL_OFF,
    RL_MANIFEST,
    VAL_SPLIT,
)

FILES = ScoringFiles(
    base=BASE_MODEL_DIR,
    val_split=VAL_SPLIT,
    general_qa_suite=GENERAL_QA_SUITE,
    instruction_suite=INSTRUCTION_SUITE,
    cache=EVAL_CACHE_DIR,
)


def main() -> None:
    params = load_params()
    reports = evaluate_rl_checkpoints(params, FILES, RL_MANIFEST, report_path(BASE, EVAL_DIR))
    write_reports(reports, RL_EVAL_DIR)
    for report in reports:
        print_summary(report)
    if reports:
        RL_EVAL_OFF.unlink(missing_ok=True)
    else:
        RL_EVAL_OFF.write_text("No RL checkpoints to score: rl.enabled is false.\n")
        print("eval_rl: no RL checkpoints (rl.enabled is false), nothing to score")


if __name__ == "__main__":
    run_stage("eval_rl", main)
