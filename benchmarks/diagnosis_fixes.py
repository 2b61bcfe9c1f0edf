"""Does the diagnosis's advice work? Produce each failure mode on the embedded model, run the
fix the diagnosis suggests, and record whether the flagged metric improved without losing the
task gain.

    python benchmarks/diagnosis_fixes.py --project build/demo/support-triage-finetune

The project is a default (support-triage) bake whose baseline `dvc repro` is committed, e.g.
the one `make demo` leaves. For each case the script changes the workspace the way the case
says (params for every case; a data set change for some), runs `dvc exp run -n induce-<mode>`,
reads select's reports/diagnosis.json, runs `dvc exp run -n fix-<mode>` with the same change
plus the finding's `try_params` (exactly what `make improve` would queue), then restores
data/raw and params.yaml. Results go to --out (default: diagnosis_fixes/ next to the project):
results.json, table.md (the table in docs/benchmarks.md) and run.log. Each case is two
training runs: ~15 minutes on a 2-core CPU.

Cases (the seeds' causes of each failure):
- forgetting: the seed's customer-support preset at full strength (rank 8, alpha 16);
- overfitting: too little data diversity, trained long (the first 90 tickets, 6 epochs);
- format_drift: half the training targets continue after the JSON with a sign-off sentence,
  and curate keeps them (curate.format_audit=keep);
- contamination: the general-QA suite's evaluated items leak into the training data as chat
  rows, and split keeps them (split.contamination=warn, curate.format_audit=keep so the
  non-JSON rows reach split).
"""

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

RAW_TICKETS = Path("data/raw/support_tickets.jsonl")
LEAK_FILE = Path("data/raw/leaked_general_qa.jsonl")
SIGN_OFF = " I hope this helps, and let me know if there is anything else I can do for you today."


def read_jsonl(path: Path) -> list[dict | str]:
    """The rows of a JSONL file; a line that is not JSON stays a string (the demo data has
    malformed lines on purpose: curate quarantines them, and so they must stay as they are).
    Split on newlines only: str.splitlines() also breaks at U+2028 and friends in strings."""
    rows: list[dict | str] = []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                rows.append(line)
    return rows


def write_jsonl(path: Path, rows: list[dict | str]) -> None:
    lines = (row if isinstance(row, str) else json.dumps(row) for row in rows)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def fewer_tickets(project: Path, keep: int = 90) -> None:
    path = project / RAW_TICKETS
    write_jsonl(path, read_jsonl(path)[:keep])


def drifting_targets(project: Path, every: int = 2) -> None:
    """Every `every`-th ticket's JSON answer goes on with prose (the seed's format drift)."""
    path = project / RAW_TICKETS
    rows = read_jsonl(path)
    for row in rows[::every]:
        messages = row.get("messages") if isinstance(row, dict) else None
        if isinstance(messages, list) and messages and isinstance(messages[-1], dict):
            messages[-1]["content"] = f"{messages[-1].get('content')}{SIGN_OFF}"
    write_jsonl(path, rows)


def leaked_general_qa(project: Path) -> None:
    """The general-QA items eval scores (the first eval.general_qa_limit) as training rows."""
    import yaml

    limit = yaml.safe_load((project / "params.yaml").read_text())["eval"]["general_qa_limit"]
    items = read_jsonl(project / "data/suites/general_qa.jsonl")[:limit]
    rows = [
        {
            "messages": [
                {"role": "user", "content": item["question"]},
                {"role": "assistant", "content": item["answers"][0]},
            ]
        }
        for item in items
    ]
    write_jsonl(project / LEAK_FILE, rows)


@dataclass(frozen=True)
class Case:
    mode: str
    induced_by: str
    params: dict[str, object]
    change_data: Callable[[Path], None] | None = None
    # the metrics.json keys that show the failure, and which way is better
    flagged: tuple[str, ...] = ()
    lower_is_better: tuple[str, ...] = field(default_factory=tuple)


CASES = [
    Case(
        "forgetting",
        "rank 8, alpha 16 (the seed's customer-support preset)",
        {"train.lora_r": 8, "train.lora_alpha": 16},
        flagged=("forgetting_score", "general_qa"),
        lower_is_better=("forgetting_score",),
    ),
    Case(
        "overfitting",
        "90 tickets, 6 epochs",
        {"train.num_epochs": 6},
        fewer_tickets,
        flagged=("val_loss", "val_task_accuracy"),
        lower_is_better=("val_loss",),
    ),
    Case(
        "format_drift",
        "half the targets end in a sign-off sentence; curate.format_audit=keep",
        {"curate.format_audit": "keep"},
        drifting_targets,
        flagged=("format_drift", "format_correct"),
        lower_is_better=("format_drift",),
    ),
    Case(
        "contamination",
        "32 general-QA eval items in the training data; split.contamination=warn",
        {"split.contamination": "warn", "curate.format_audit": "keep"},
        leaked_general_qa,
        flagged=("general_qa", "forgetting_score"),
    ),
]


def run(cmd: list[str], cwd: Path, log: Path) -> float:
    """Run `cmd`, appending its output to `log`; seconds taken. Raises on failure."""
    start = time.monotonic()
    with log.open("a") as out:
        out.write(f"\n$ {' '.join(cmd)}\n")
        out.flush()
        subprocess.run(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=True)
    return time.monotonic() - start


def exp_run(project: Path, name: str) -> list[str]:
    """`dvc exp run -n name`, after removing an experiment of that name from an earlier run."""
    subprocess.run(["dvc", "exp", "remove", name], cwd=project, capture_output=True)
    return ["dvc", "exp", "run", "-n", name]


def set_args(params: dict[str, object]) -> list[str]:
    return [arg for key, value in params.items() for arg in ("-S", f"{key}={value}")]


def outcome(project: Path) -> dict:
    """The workspace's results after `dvc exp run`: metrics and the diagnosis."""
    metrics = json.loads((project / "reports/metrics.json").read_text())
    diagnosis = json.loads((project / "reports/diagnosis.json").read_text())
    return {"metrics": metrics, "diagnosis": diagnosis}


def finding(result: dict, mode: str) -> dict | None:
    return next((f for f in result["diagnosis"]["findings"] if f["mode"] == mode), None)


def restore(project: Path, log: Path) -> None:
    # from HEAD, not the index: `dvc exp run` stages the changed files
    run(["git", "checkout", "HEAD", "--", "data/raw", "params.yaml"], project, log)
    (project / LEAK_FILE).unlink(missing_ok=True)


def run_case(case: Case, project: Path, log: Path) -> dict:
    record: dict = {"mode": case.mode, "induced_by": case.induced_by, "params": case.params}
    try:
        if case.change_data:
            case.change_data(project)
        cmd = exp_run(project, f"induce-{case.mode.replace('_', '-')}")
        record["induce_seconds"] = run([*cmd, *set_args(case.params)], project, log)
        induced = outcome(project)
        record["induced"] = induced["metrics"]
        found = finding(induced, case.mode)
        record["finding"] = found
        if found is None or not found["try_params"]:
            return record
        fix_params = {**case.params, **found["try_params"]}
        cmd = exp_run(project, f"fix-{case.mode.replace('_', '-')}")
        record["fix_seconds"] = run([*cmd, *set_args(fix_params)], project, log)
        fixed = outcome(project)
        record["fixed"] = fixed["metrics"]
        record["fires_after_fix"] = finding(fixed, case.mode) is not None
        record["verdict"] = verdict(case, record)
        return record
    finally:
        restore(project, log)


def verdict(case: Case, record: dict) -> str:
    """helped: every flagged metric moved the right way (contamination: the leak's inflation
    went away, i.e. the finding no longer fires) and the fix still beats the base on test
    beyond the noise (or did not lose task accuracy). Otherwise the first thing that failed."""
    before, after = record["induced"], record["fixed"]
    if case.mode == "contamination":
        moved = not record["fires_after_fix"]
    else:
        first = case.flagged[0]
        lower = first in case.lower_is_better
        moved = after[first] < before[first] if lower else after[first] > before[first]
    if not moved:
        return f"no: {case.flagged[0]} did not improve"
    kept_gain = after.get("vs_base_task_accuracy_diff_lo", 0) > 0 or (
        after["task_accuracy"] >= before["task_accuracy"]
    )
    if not kept_gain:
        return "no: the task gain was lost"
    return "helped" + (" (the finding still fires)" if record["fires_after_fix"] else "")


def table(records: list[dict]) -> str:
    """The markdown table for docs/benchmarks.md."""
    head = (
        "| mode | produced by | fired | suggested fix | flagged metric: induced -> fixed "
        "| test task (vs base p) induced -> fixed | guardrails induced -> fixed | verdict |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in records:
        found = r.get("finding")
        if found is None:
            lines.append(f"| {r['mode']} | {r['induced_by']} | no | - | - | - | - | not produced |")
            continue
        fix = " ".join(f"{k}={v}" for k, v in found["try_params"].items()) or "(advice only)"
        if "fixed" not in r:
            lines.append(f"| {r['mode']} | {r['induced_by']} | yes | {fix} | - | - | - | - |")
            continue
        before, after = r["induced"], r["fixed"]
        flagged = "; ".join(
            f"{key} {before.get(key, float('nan')):.3f} -> {after.get(key, float('nan')):.3f}"
            for key in CASE_BY_MODE[r["mode"]].flagged
        )

        def task(m: dict) -> str:
            p = m.get("vs_base_task_accuracy_p")
            return f"{m['task_accuracy']:.3f}" + (f" (p {p:.3f})" if p is not None else "")

        lines.append(
            f"| {r['mode']} | {r['induced_by']} | yes | `{fix}` | {flagged} | "
            f"{task(before)} -> {task(after)} | {before['guardrails_passed']} -> "
            f"{after['guardrails_passed']} | {r['verdict']} |"
        )
    return head + "\n".join(lines) + "\n"


CASE_BY_MODE = {case.mode: case for case in CASES}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--modes", nargs="+", choices=list(CASE_BY_MODE), default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--table", action="store_true", help="re-render results.json only")
    args = parser.parse_args(argv)
    project = args.project.resolve()
    out_dir = (args.out or project.parent / "diagnosis_fixes").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    changed = ["git", "diff", "--quiet", "HEAD", "--", "params.yaml", "data/raw"]
    if subprocess.run(changed, cwd=project).returncode:
        sys.exit(f"{project}: params.yaml or data/raw differ from HEAD; commit the baseline first")
    log, out = out_dir / "run.log", out_dir / "results.json"
    records = json.loads(out.read_text()) if out.exists() else []
    if args.table:
        for record in records:
            if "fixed" in record:
                record["verdict"] = verdict(CASE_BY_MODE[record["mode"]], record)
        out.write_text(json.dumps(records, indent=2) + "\n")
        print(table(records))
        return 0
    for mode in args.modes or list(CASE_BY_MODE):
        print(f"== {mode} (log: {log})", flush=True)
        record = run_case(CASE_BY_MODE[mode], project, log)
        records = [r for r in records if r["mode"] != mode] + [record]
        out.write_text(json.dumps(records, indent=2) + "\n")
        print(table([record]), flush=True)
    (out_dir / "table.md").write_text(table(records))
    print(table(records))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
