"""The demo's headline over several seeds: mean and spread of the selected model's metrics.

Run inside a project where `dvc repro` has run (e.g. after `make demo`), with the project's
venv on PATH:

    python benchmarks/seeds.py --project build/demo/support-triage-finetune --seeds 7 1234 \
        --out seeds.json

The workspace's own reports/metrics.json is the first run (its params' seed); each other seed
is a `dvc exp run -S seed=<seed>` (a new split and initialisation: everything from split on
reruns), whose reports/metrics.json is read from the workspace right after it. params.yaml is
restored to HEAD's at the end; the outputs stay the last run's (`dvc exp` keeps every run).
"""

import argparse
import json
import statistics
import subprocess
import time
from pathlib import Path

HEADLINE = (
    "task_accuracy",
    "task_accuracy_lo",
    "task_accuracy_hi",
    "val_task_accuracy",
    "general_qa",
    "forgetting_score",
    "format_correct",
    "guardrails_passed",
    "selected_step",
    "test_items",
)


SUMMARISED = (
    "task_accuracy",
    "val_task_accuracy",
    "general_qa",
    "forgetting_score",
    "format_correct",
)


def headline(metrics: dict) -> dict:
    return {key: metrics.get(key) for key in HEADLINE}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    project = args.project.resolve()
    metrics_path = project / "reports" / "metrics.json"
    import yaml

    first_seed = yaml.safe_load((project / "params.yaml").read_text())["seed"]
    runs = [{"seed": first_seed, "minutes": None, **headline(json.loads(metrics_path.read_text()))}]
    for seed in args.seeds:
        started = time.perf_counter()
        subprocess.run(
            ["dvc", "exp", "run", "-S", f"seed={seed}", "--name", f"seed-{seed}"],
            cwd=project,
            check=True,
        )
        minutes = round((time.perf_counter() - started) / 60, 1)
        runs.append(
            {"seed": seed, "minutes": minutes, **headline(json.loads(metrics_path.read_text()))}
        )
        args.out.write_text(json.dumps({"runs": runs}, indent=2) + "\n")
    # dvc exp run leaves the last seed in params.yaml: back to the committed one (the outputs
    # stay the last run's, whose local checkpoints they match)
    subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], cwd=project, check=True)
    summary = {}
    for key in (
        "task_accuracy",
        "val_task_accuracy",
        "general_qa",
        "forgetting_score",
        "format_correct",
    ):
        values = [r[key] for r in runs if isinstance(r.get(key), (int, float))]
        if values:
            summary[key] = {
                "mean": round(statistics.fmean(values), 3),
                "sd": round(statistics.stdev(values), 3) if len(values) > 1 else 0.0,
                "min": min(values),
                "max": max(values),
            }
    summary["guardrails_passed"] = sum(bool(r["guardrails_passed"]) for r in runs)
    args.out.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
