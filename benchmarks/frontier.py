"""The demo's frontier: task accuracy vs forgetting vs minutes, one point per checkpoint of
each training recipe, on the real model.

Run inside a baked project where `dvc repro split` has run (e.g. after `make demo`):

    python benchmarks/frontier.py --project build/demo/support-triage-finetune \
        --variant "defaults:" \
        --variant "lr1e-3:train.learning_rate=0.001" \
        --out frontier.json --plot docs/frontier.png

Each variant sets params (dotted keys, YAML values, comma-separated) over the project's
params.yaml (after `--base`'s, the recipe the variants change), runs the replay, split, train
and eval stages' main() in a subprocess each (no DVC, no smoke), and records per checkpoint:
the step, val task accuracy (and task score), general QA, instruction following, forgetting
score, and the train stage's seconds up to that checkpoint (its share of the steps) plus eval's
seconds. params.yaml is restored afterwards. `--plot` draws every variant's checkpoints (x:
forgetting score, y: val task accuracy, marker size: minutes) from the JSON, so a plot can be
redrawn without training (`--from-json`).
`--variants-from benchmarks/results/frontier.json` reruns the recorded variants
(`make bench-frontier`).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

STAGES = ("replay", "split", "train", "eval")  # replay: its rows depend on split.replay_*
METRICS = ("task_accuracy", "task_score", "general_qa", "instruction_follow", "forgetting_score")


def set_params(raw: dict, overrides: str) -> dict:
    import copy

    import yaml

    params = copy.deepcopy(raw)
    # a comma starts a new pair only before `key=`: list values ([q_proj,k_proj]) keep theirs
    for pair in filter(None, re.split(r",(?=[\w.]+=)", overrides)):
        key, value = pair.split("=", 1)
        *path, last = key.strip().split(".")
        node = params
        for part in path:
            node = node[part]
        node[last] = yaml.safe_load(value)
    return params


def package_of(project: Path) -> str:
    return next(p.parent.parent.name for p in (project / "src").glob("*/stages/train.py"))


def run_stage(project: Path, stage: str, log: Path) -> float:
    started = time.perf_counter()
    with log.open("a") as handle:
        subprocess.run(
            [sys.executable, "-m", f"{package_of(project)}.stages.{stage}"],
            cwd=project,
            env={**os.environ, "PYTHONPATH": str(project / "src")},
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=True,
        )
    return time.perf_counter() - started


def run_variant(project: Path, name: str, overrides: str, logs: Path, base: str = "") -> dict:
    import yaml

    params_path = project / "params.yaml"
    original = params_path.read_text()
    try:
        params = set_params(yaml.safe_load(original), f"{base},{overrides}")
        params_path.write_text(yaml.safe_dump(params))
        seconds = {stage: run_stage(project, stage, logs / f"{name}.log") for stage in STAGES}
    finally:
        params_path.write_text(original)
    stats = json.loads((project / "reports/train/stats.json").read_text())
    reports = [json.loads(p.read_text()) for p in (project / "reports/eval").glob("*.json")]
    last = max(stats["global_step"], 1)
    points = [
        {
            "model": r["model"],
            "step": r["step"],
            **{m: r["metrics"].get(m) for m in METRICS},
            "val_loss": r.get("val_loss"),
            "train_minutes": round(seconds["train"] * r["step"] / last / 60, 2),
        }
        for r in sorted(reports, key=lambda r: r["step"])
        if r["role"] != "fewshot"
    ]
    train_rows = sum(1 for _ in (project / "data/splits/train.jsonl").open())
    return {
        "name": name,
        "overrides": overrides,
        "train_rows": train_rows,
        "steps": stats["global_step"],
        "stage_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "checkpoints": points,
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10.5, 4.5), dpi=110)
    for result in results:
        points = [p for p in result["checkpoints"] if p["step"] > 0]
        xs = [p["forgetting_score"] for p in points]
        ys = [p["task_accuracy"] for p in points]
        sizes = [12 + 12 * p["train_minutes"] for p in points]
        ax.plot(xs, ys, linewidth=0.8, alpha=0.6)
        ax.scatter(xs, ys, s=sizes, label=f"{result['name']} ({result['steps']} steps)")
        if points:
            ax.annotate(f"{points[-1]['train_minutes']:.1f} min", (xs[-1], ys[-1]), fontsize=7)
    ax.axvline(0.19, color="grey", linestyle="--", linewidth=1, label="forgetting alert 0.19")
    ax.set(
        xlabel="forgetting score (val, all general items)",
        ylabel="val task accuracy",
        title="Task accuracy vs forgetting per checkpoint (marker size: train minutes)",
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path)
    parser.add_argument("--variant", action="append", default=[], help="name:key=value,...")
    parser.add_argument(
        "--variants-from", type=Path, help="also run every variant (name, overrides) of a JSON"
    )
    parser.add_argument("--base", default="", help="key=value,... set before every variant")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--plot", type=Path)
    parser.add_argument("--from-json", action="store_true", help="only redraw --plot from --out")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.out.read_text())
    else:
        project = args.project.resolve()
        logs = args.out.with_suffix(".logs")
        logs.mkdir(parents=True, exist_ok=True)
        results = json.loads(args.out.read_text()) if args.out.exists() else []
        variants = [spec.partition(":")[::2] for spec in args.variant]
        if args.variants_from:
            recorded = json.loads(args.variants_from.read_text())
            variants += [(r["name"], r["overrides"]) for r in recorded]
        for name, overrides in variants:
            results = [r for r in results if r["name"] != name]
            results.append(run_variant(project, name, overrides, logs, args.base))
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps(results[-1]["checkpoints"][-1]), flush=True)
    if args.plot:
        plot(results, args.plot)


if __name__ == "__main__":
    main()
