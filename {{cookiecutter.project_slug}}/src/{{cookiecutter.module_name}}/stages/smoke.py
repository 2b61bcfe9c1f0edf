"""Stage `smoke`: the real training code on ~10 % of train for a few steps, before the full run.

Passes when the loss is finite and falls on the smoke rows, and the saved adapter reloads to
the same outputs. Writes reports/smoke.json with seconds per step, an estimate of the full
run and `make advise`'s advice (method, batch size, time) timed by the measured steps; exits
non-zero with the reason when a check fails, so `train` never starts on a broken setup.
reports/training_example.html shows one row as TRL tokenized it, trained tokens highlighted."""

from dataclasses import asdict

from ..cli import run_stage
from ..errors import StageError
from ..io import read_jsonl, write_json
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    CURATE_REPORT,
    SMOKE_PASSED,
    SMOKE_REPORT,
    TRAIN_SPLIT,
    TRAINING_EXAMPLE,
)
from ..training.advisor import advice_from_smoke
from ..training.example import ExamplePage
from ..training.smoke import run_smoke


def main() -> None:
    params = load_params()
    train_rows = read_jsonl(TRAIN_SPLIT)
    page = ExamplePage(TRAINING_EXAMPLE, TRAIN_SPLIT, CURATE_REPORT)
    report = run_smoke(params, BASE_MODEL_DIR, train_rows, page)
    advice = advice_from_smoke(params, train_rows, report, BASE_MODEL_DIR)
    report["advice"] = asdict(advice)
    write_json(SMOKE_REPORT, report)
    print(
        f"smoke: loss {report['loss_before']} -> {report['loss_after']} on {report['rows']} rows, "
        f"{report['seconds_per_step']} s/step; full run ~{report['full_run_minutes_estimate']} "
        f"min for {report['full_run_steps']} steps"
    )
    rl = report.get("rl")
    if rl:
        print(
            f"smoke: rl: {rl['steps']} GRPO steps on the base (rl itself starts from an SFT "
            f"checkpoint), reward {rl['reward_first']} -> {rl['reward_last']}, "
            f"{rl['seconds_per_step']} s/step; rl stage "
            f"~{rl['full_run_minutes_estimate']} min for {rl['full_run_steps']} steps"
        )
    print(f"smoke: advice: {advice.summary} (`make advise` for details)")
    example = report.get("training_example")
    if example:
        check = {
            True: f"curate counts the same ({example['curate_trained']})",
            False: f"curate counts {example['curate_trained']}: NOT TRL's count, its audit is off",
            None: "no train row tokenizes to it",
        }[example["matches"]]
        print(
            f"smoke: {example['trained']} of {example['tokens']} tokens of {example['source']} "
            f"are trained, {check} ({TRAINING_EXAMPLE})"
        )
    if not report["passed"]:
        raise StageError("; ".join(report["problems"]))
    # the gate train depends on: unlike smoke.json (timings), identical on every pass
    write_json(SMOKE_PASSED, {"passed": True})


if __name__ == "__main__":
    run_stage("smoke", main)
