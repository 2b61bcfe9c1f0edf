"""Named sets of `dvc exp run` experiments and their headline table: the runs behind the
"Recipe", "Judgement", "DPO after SFT", "GRPO after SFT" and "Shipping" (export parity of
every type) sections of docs/benchmarks.md.

Run in a project whose baseline is committed (e.g. after `make demo`), with the project's
venv on PATH:

    python benchmarks/experiments.py --project build/demo/support-triage-finetune \
        --set recipe --out recipe.json [--only rank-8,rank-4]

Every experiment is `dvc exp run -n <set>-<name> -S key=value ...`: the set's common params
(the recipe the section measured, set explicitly, so today's defaults do not leak in), then the
experiment's own. Each starts from the committed params.yaml; its reports/metrics.json is read
from the workspace right after the run and one table row printed. Uncommitted changes to
params.yaml are discarded (git checkout), others go into every run (as with any `dvc exp run`).
The workspace is left with the last run's results and outputs (`dvc exp show` lists every run;
`dvc exp apply` brings one back; after `git checkout`, `dvc repro -f train` rebuilds the local
checkpoints).
`--quick` drops the set's common params and keeps the workspace's (e.g. the tiny model of
benchmarks/tiny_project.py): it checks that the command runs, it measures nothing.
"""

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

# The demo's default before the base-answered replay recipe (docs/benchmarks.md "Recipe",
# measured at 2483b68): style-format preset of the time, hand-written replay off, the first
# 32 general-QA and 16 instruction items, a checkpoint every 20 steps.
OLD_DEFAULT = {
    "train.lora_r": 4,
    "train.lora_alpha": 8,
    "train.learning_rate": 2e-4,
    "train.num_epochs": 2,
    "train.save_steps": 20,
    "split.replay_fraction": 0.0,
    "split.replay_answers": "data",
    "eval.general_qa_limit": 32,
    "eval.instruction_limit": 16,
}
RANK_8 = {"train.lora_r": 8, "train.lora_alpha": 16}
# What the forgetting rule suggested then: three levers at once.
OLD_ADVICE = {"train.learning_rate": 1e-4, "train.num_epochs": 1, "split.replay_fraction": 0.1}

BASELINE = "HEAD"  # a set's `compare` may name the committed run itself

SETS: dict[str, dict] = {
    "recipe": {
        "common": OLD_DEFAULT,
        "runs": {
            "rank-8": RANK_8,
            "rank-8-replay-0.2": {**RANK_8, "split.replay_fraction": 0.2},
            "rank-8-lr-1e-4": {**RANK_8, "train.learning_rate": 1e-4},
            "rank-8-old-advice": {**RANK_8, **OLD_ADVICE},
            "rank-4": {},
            "rank-4-seed-7": {"seed": 7},
            "rank-4-1.5-epochs": {"train.num_epochs": 1.5, "train.save_steps": 23},
            "rank-2": {"train.lora_r": 2, "train.lora_alpha": 4},
            "rank-4-save-31": {"train.save_steps": 31},
            "rank-4-save-31-replay-0.1": {"train.save_steps": 31, "split.replay_fraction": 0.1},
        },
    },
    # Measured at f16d900, when rank 8 was the default: the baseline and each candidate fix,
    # then `make compare-exps A=judgement-replay-0.2 B=judgement-lr-1e-4`.
    "judgement": {
        "common": {**OLD_DEFAULT, **RANK_8},
        "runs": {
            "baseline": {},
            "replay-0.2": {"split.replay_fraction": 0.2},
            "lr-1e-4": {"train.learning_rate": 1e-4},
            "rank-4": {"train.lora_r": 4, "train.lora_alpha": 8},
            "improve-suggestion": OLD_ADVICE,
        },
        "compare": ("replay-0.2", "lr-1e-4"),
    },
    # Measured at 0ee628d: one SFT epoch at the default of the time (rank 8), then DPO on the
    # shipped preference pairs with the default DPO params.
    "dpo": {
        "common": {**OLD_DEFAULT, **RANK_8},
        "runs": {"sft-1-epoch": {"train.num_epochs": 1, "dpo.enabled": True}},
        "reports": ("reports/dpo/stats.json",),
    },
    # Measured at aba2ee9-499c7aa: SFT alone (the committed demo run, HEAD) against SFT +
    # GRPO, three settings of the rl stage; smoke (timing GRPO steps), rl, eval_rl, select and
    # export re-run, train and eval do not. The paired comparison is the default's (t0.7).
    "rl": {
        "common": {
            "rl.enabled": True,
            "rl.prompts_per_step": 4,
            "rl.num_generations": 4,
            "rl.max_completion_length": 56,
            "rl.max_steps": 32,
            "rl.save_steps": 8,
            "rl.beta": 0.04,
        },
        "runs": {
            "t1.0-lr-2e-4": {
                "rl.temperature": 1.0,
                "rl.learning_rate": 2e-4,
                "rl.reward_weights.field_share": 0.0,
            },
            "t0.7-lr-5e-5": {
                "rl.temperature": 0.7,
                "rl.learning_rate": 5e-5,
                "rl.reward_weights.field_share": 0.0,
            },
            "field-share-lr-1e-4": {
                "rl.temperature": 1.0,
                "rl.learning_rate": 1e-4,
                "rl.reward_weights.field_share": 1.0,
            },
        },
        "reports": ("reports/rl/stats.json", "reports/smoke.json"),
        "val_reports": ("reports/eval_rl",),
        "compare": (BASELINE, "t0.7-lr-5e-5"),
    },
    # Measured at 6b64d79 on the demo's selected adapter: only export re-runs. Every GGUF type
    # and a bf16 merge, parity on all test rows, marked (not failed) where it misses.
    "export-types": {
        "common": {},
        "runs": {
            "every-type": {
                "export.gguf_types": "[f16,q8_0,q4_0]",
                "export.dtype": "bf16",
                "export.parity_rows": "null",
                "export.on_parity_failure": "mark",
            }
        },
        "reports": ("reports/export.json",),
    },
}
HEADLINE = (
    "task_accuracy",
    "task_accuracy_lo",
    "task_accuracy_hi",
    "val_task_accuracy",
    "format_correct",
    "general_qa",
    "forgetting_score",
    "guardrails_passed",
    "diagnosis",
    "selected_step",
)


def overrides(params: dict) -> list[str]:
    """`-S key=value` arguments, values as YAML reads them back (true, 0.0002, data)."""
    args = []
    for key, value in params.items():
        text = json.dumps(value) if isinstance(value, bool) else str(value)
        args += ["-S", f"{key}={text}"]
    return args


def row(name: str, minutes: float | None, metrics: dict) -> dict:
    """The headline keys of reports/metrics.json, plus every paired test against the base."""
    found = {key: metrics.get(key) for key in HEADLINE}
    found |= {k: v for k, v in metrics.items() if "vs_base" in k}
    return {"name": name, "minutes": minutes, **found}


def markdown(rows: list[dict]) -> str:
    columns = ["name", "minutes", *HEADLINE]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c)) for c in columns) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--set", choices=sorted(SETS), required=True)
    parser.add_argument("--only", help="comma-separated run names of the set (default: all)")
    parser.add_argument("--out", type=Path, help="write the rows as JSON")
    parser.add_argument("--quick", action="store_true", help="keep the workspace's params")
    args = parser.parse_args()
    spec = SETS[args.set]
    names = args.only.split(",") if args.only else list(spec["runs"])
    unknown = sorted(set(names) - set(spec["runs"]))
    if unknown:
        parser.error(f"--only: not in set {args.set}: {unknown}")
    project = args.project.resolve()
    common = {} if args.quick else spec["common"]
    # the project's own package first, wherever else one of that name is installed
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, ["src", os.environ.get("PYTHONPATH")])),
    }
    rows = []
    if spec.get("compare", (None,))[0] == BASELINE:  # the committed run's row, for the table
        committed = subprocess.run(
            ["git", "show", f"{BASELINE}:reports/metrics.json"],
            cwd=project,
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(row(BASELINE, None, json.loads(committed.stdout)))
    for name in names:
        exp = f"{args.set}-{name}"
        command = ["dvc", "exp", "run", "-n", exp, *overrides({**common, **spec["runs"][name]})]
        print("$", " ".join(command), flush=True)
        # a re-run replaces the experiment of that name (dvc exp run refuses a taken name)
        subprocess.run(["dvc", "exp", "remove", exp], cwd=project, capture_output=True)
        # an exp run leaves its params in the workspace: start each from the baseline's
        subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], cwd=project, check=True)
        started = time.perf_counter()
        subprocess.run(command, cwd=project, env=env, check=True)
        minutes = round((time.perf_counter() - started) / 60, 1)
        metrics = json.loads((project / "reports" / "metrics.json").read_text())
        rows.append(row(exp, minutes, metrics))
        for folder in spec.get("val_reports", ()):  # each checkpoint's val metrics, by name
            rows[-1][folder] = {
                path.stem: json.loads(path.read_text())["metrics"]
                for path in sorted((project / folder).glob("*.json"))
            }
        for report in spec.get("reports", ()):
            path = project / report
            rows[-1][report] = json.loads(path.read_text()) if path.exists() else None
        if args.out:
            args.out.write_text(json.dumps(rows, indent=2) + "\n")
    a, b = spec.get("compare", (None, None))
    if a in (*names, BASELINE) and b in names:
        first = a if a == BASELINE else f"{args.set}-{a}"
        compare = ["make", "compare-exps", "VENV=", f"A={first}", f"B={args.set}-{b}"]
        subprocess.run(compare, cwd=project, env=env, check=True)
    # The workspace keeps the last run's results: its local checkpoints (models/checkpoints,
    # not cached by DVC) are that run's, so resetting to HEAD would leave them mismatched.
    subprocess.run(["git", "checkout", "HEAD", "--", "params.yaml"], cwd=project, check=True)
    print(markdown(rows))


if __name__ == "__main__":
    main()
