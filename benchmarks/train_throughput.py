"""Train throughput of the generated project's train stage vs a plain TRL SFTTrainer script.

Both run in one process, on the same base model, the same train rows and the same
hyperparameters (LoRA r/alpha/dropout, lr, batch size, max_length, completion-only loss),
for the same number of optimizer steps. Reported: trained tokens per second (non-padding
tokens, as TRL counts them in `num_tokens`) and the A/B ratio.

Runs alternate (stage, plain, stage, plain, ...) and the median of the per-pair ratios is
reported.

The plain script is what a TRL user writes: SFTConfig with the hyperparameters set and the
rest left at TRL's defaults, except `bf16` (TRL's default is bf16=True, which on a CPU without
native bf16 runs matmuls ~150x slower; it is set to what the stage resolves, so the comparison
is about the training loop, not about that trap). `--strict` also turns off TRL's default
gradient checkpointing in the plain script, so only the stage's own choices differ.

Run inside a project where `dvc repro split base` has run (e.g. after `make demo`):
    python benchmarks/train_throughput.py --project build/demo/support-triage-finetune
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def plain_trl(params, rows, out_dir: Path, steps: int, strict: bool, bf16: bool):
    """A plain TRL + PEFT script, as in TRL's docs (trl/scripts/sft.py)."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    train = params.train
    config = SFTConfig(
        output_dir=str(out_dir),
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.learning_rate,
        max_length=train.max_length,
        max_steps=steps,
        save_strategy="no",
        report_to="none",
        seed=params.seed,
        bf16=bf16,
        use_cpu=True,
        disable_tqdm=True,
        **({"gradient_checkpointing": False} if strict else {}),
    )
    peft_config = LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules=train.target_modules,
        task_type="CAUSAL_LM",
    )
    dataset = Dataset.from_list(
        [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]
    )
    return SFTTrainer(
        model="models/base", args=config, train_dataset=dataset, peft_config=peft_config
    )


def measure(trainer) -> dict:
    """Time `train()`; tokens are the non-padding tokens TRL counted (its `num_tokens`)."""
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = trainer._total_train_tokens
    return {
        "seconds": round(seconds, 2),
        "tokens": int(tokens),
        "tokens_per_second": round(tokens / seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--strict", action="store_true", help="plain script without grad ckpt")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args()

    project = args.project.resolve()
    os.chdir(project)
    module = next(p.name for p in (project / "src").iterdir() if (p / "params.py").exists())
    sys.path.insert(0, str(project / "src"))
    params_mod = __import__(f"{module}.params", fromlist=["load_params"])
    train_mod = __import__(f"{module}.train", fromlist=["build_trainer"])
    modeling = __import__(f"{module}.modeling", fromlist=["use_bf16"])
    jsonio = __import__(f"{module}.jsonio", fromlist=["read_jsonl"])

    params = params_mod.load_params()
    rows = jsonio.read_jsonl(Path("data/splits/train.jsonl"))
    bf16 = modeling.use_bf16(params.train.bf16)
    tmp = Path("/tmp/train-throughput")
    results: dict = {"stage": [], "plain_trl": [], "pair_ratios": []}

    def stage_trainer(steps: int):
        return train_mod.build_trainer(
            params,
            rows,
            None,
            tmp / "stage",
            max_steps=steps,
            save_strategy="no",
            disable_tqdm=True,
            eval_on_start=False,
        )

    # One short unmeasured run warms up the allocator and kernels; then A/B pairs, so a
    # drift in machine speed hits both sides of each ratio alike.
    measure(stage_trainer(2))
    for pair in range(args.pairs):
        stage = measure(stage_trainer(args.steps))
        plain = measure(plain_trl(params, rows, tmp / "plain", args.steps, args.strict, bf16))
        results["stage"].append(stage)
        results["plain_trl"].append(plain)
        results["pair_ratios"].append(
            round(stage["tokens_per_second"] / plain["tokens_per_second"], 3)
        )
        print(f"pair {pair + 1}: stage {stage} plain {plain}", flush=True)
    results["median_ratio_stage_over_plain"] = statistics.median(results["pair_ratios"])
    results["settings"] = {
        "steps": args.steps,
        "strict": args.strict,
        "bf16": bf16,
        "batch_size": params.train.batch_size,
        "lora_r": params.train.lora_r,
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
