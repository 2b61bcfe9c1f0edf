"""Every model family through every stage, as a table (docs/benchmarks.md "Model families").

For each family of tests/tiny_model.py (a tiny random model with the chat template the family
publishes and a tokenizer of its kind), in a fresh project laid out as the template's
tests/test_model_matrix.py lays it out (40 demo tickets with their system prompt and one
two-answer chat): each stage's main() in order, timed, then
- what the base needed: system prompts folded or not, the LoRA modules all-linear reached;
- merge parity: the largest |logit| difference of the merged model (float32) and of the
  exported f16 merged model from the unmerged adapter, relative to the largest logit;
- the export report: every export written, its prompt tokens and answers against the
  adapter's, the GGUF converter's architecture and pre-tokenizer, the Modelfile's template.

    python benchmarks/model_matrix.py [--out build/model-matrix] [--families qwen2,phi3]

Uses the template's dev venv (make venv) and the embedded converter cache."""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SLUG, MODULE = "support-triage-finetune", "support_triage_finetune"

PROBE = r"""
import json, sys, time
from pathlib import Path
import torch
import test_model_matrix as matrix
from tiny_model import build_tiny_model
from peft import PeftModel
from transformers import AutoModelForCausalLM
from {module}.models.chat_template import folds_system
from {module}.io import read_json
from {module}.paths import BASE_MODEL_DIR, EXPORT_REPORT, MERGED_EXPORT, SELECTED_DIR
from {module}.models.loading import load_base_model, load_model_with_adapter, load_tokenizer

family, work = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(1)
base_dir = build_tiny_model(work / "tiny", family=family)
root = work / "project"
root.mkdir()
matrix.lay_out_project(root, base_dir)
import os; os.chdir(root)
row = {{"family": family, "stages": {{}}}}
for name, stage in matrix.STAGES.items():
    started = time.perf_counter()
    try:
        stage.main()
    except Exception as error:
        row["stopped"] = f"{{name}}: {{error}}"[:300]
        break
    row["stages"][name] = round(time.perf_counter() - started, 1)
if "stopped" not in row:
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    row["system_folded"] = folds_system(tokenizer)
    config = read_json(SELECTED_DIR / "adapter_config.json")
    row["lora_modules"] = sorted({{m.rsplit(".", 1)[-1] for m in config["target_modules"]}})
    ids = torch.tensor([tokenizer("billing refund order 4411")["input_ids"]])
    with torch.no_grad():
        base = load_base_model(BASE_MODEL_DIR)
        adapter = PeftModel.from_pretrained(base, str(SELECTED_DIR)).eval()
        reference = adapter(ids).logits
        merged = load_model_with_adapter(SELECTED_DIR, BASE_MODEL_DIR)(ids).logits
        exported = AutoModelForCausalLM.from_pretrained(MERGED_EXPORT, dtype=torch.float32)
        exported = exported(ids).logits
    scale = reference.abs().max().item()
    row["merge_rel_diff"] = (merged - reference).abs().max().item() / scale
    row["export_f16_rel_diff"] = (exported - reference).abs().max().item() / scale
    report = read_json(EXPORT_REPORT)
    keep = ("same_prompts", "agreement", "stop_rate", "passed")
    row["exports"] = {{
        name: {{k: v for k, v in figures.items() if k in keep}}
        for name, figures in report["exports"].items()
    }}
    row["gguf"] = report.get("gguf", {{}})
print("ROW " + json.dumps(row, default=str))
"""


def bake(out: Path) -> Path:
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    subprocess.run(
        ["cookiecutter", str(ROOT), "--no-input", "-f", "-o", str(out)],
        check=True,
        capture_output=True,
    )
    return out / SLUG


def family_row(project: Path, family: str, work: Path) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": f"{project / 'src'}:{project / 'tests'}"}
    env["OMP_NUM_THREADS"] = "1"
    code = PROBE.format(module=MODULE)
    done = subprocess.run(
        [sys.executable, "-c", code, family, str(work)],
        env=env,
        text=True,
        capture_output=True,
        cwd=project,
    )
    rows = [line[4:] for line in done.stdout.splitlines() if line.startswith("ROW ")]
    if not rows:
        return {"family": family, "stopped": done.stderr.strip().splitlines()[-1:]}
    return json.loads(rows[0])


def table(rows: list[dict]) -> str:
    lines = [
        "| family | stages reached (s) | system prompt | LoRA modules | merged vs adapter "
        "| f16 export vs adapter | exports: same prompts, answers = adapter's "
        "| GGUF arch, pre-tokenizer | Modelfile |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "stopped" in row:
            lines.append(f"| {row['family']} | stopped: {row['stopped']} |||||||")
            continue
        stages = f"all {len(row['stages'])} ({sum(row['stages'].values()):.0f} s)"
        exports = ", ".join(
            f"{name} {'yes' if fig.get('same_prompts') else 'NO'} {fig.get('agreement')}"
            for name, fig in row["exports"].items()
            if name != "adapter"
        )
        gguf = row.get("gguf", {})
        system = "folded" if row["system_folded"] else "as written"
        modules = " ".join(module.removesuffix("_proj") for module in row["lora_modules"])
        converted = f"{gguf.get('architecture', '?')}, {gguf.get('pre_tokenizer', '?')}"
        lines.append(
            f"| {row['family']} | {stages} | {system} | {modules} "
            f"| {row['merge_rel_diff']:.1e} | {row['export_f16_rel_diff']:.1e} | {exports} "
            f"| {converted} | {gguf.get('modelfile_chat_format', '?')} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "model-matrix")
    parser.add_argument("--families", help="comma-separated (default: all)")
    args = parser.parse_args()
    project = bake(args.out.resolve() / "bake")
    sys.path.insert(0, str(project / "tests"))
    from tiny_model import FAMILIES

    families = args.families.split(",") if args.families else FAMILIES
    rows = []
    for family in families:
        rows.append(family_row(project, family, args.out.resolve() / family))
        print(json.dumps(rows[-1], default=str), flush=True)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2, default=str))
    print(table(rows))


if __name__ == "__main__":
    main()
