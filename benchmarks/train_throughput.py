"""Train throughput and model-FLOPs utilisation of the train stage vs a plain TRL script.

Both run in one process, on the same base model, the same train rows and the same
hyperparameters (LoRA r/alpha/dropout, lr, batch size, max_length, completion-only loss),
for the same number of optimizer steps. Reported per run: trained tokens per second
(non-padding tokens, as TRL counts them) and MFU, the model FLOPs those tokens cost over the
bf16 matmul peak measured in the same process. Runs alternate (stage, plain, stage, ...) and
the median of the per-pair ratios is reported.

The plain script is what a TRL user writes: SFTConfig with the hyperparameters set and the
rest left at TRL's defaults (bf16 on, activation checkpointing on). `--plain-bf16 false`
turns bf16 off in the plain script (for CPUs without native bf16, where TRL's default runs
~150x slower); `--strict` also turns off its activation checkpointing.

Model FLOPs per trained token (the Chinchilla/PaLM accounting): forward = 2 x the matmul
weights (attention and MLP projections, LM head) + the attention scores (2 x 2 x layers x
sequence x hidden for QK^T and AV, halved for the causal mask). Training costs 3x forward
for full fine-tuning; with LoRA the frozen weights need no weight gradients, so 2x forward
plus 3x the adapters' own FLOPs. Padding tokens count as waste, not as work.

Run inside a project where `dvc repro split` has run (e.g. after `make demo`):
    python benchmarks/train_throughput.py --project build/demo/support-triage-finetune
    python benchmarks/train_throughput.py --project ... --stage-set padding_free=true
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def matmul_peak_gflops(dtype, size: int = 2048, reps: int = 8) -> float:
    """Best-of-3 GFLOPS of a square matmul on this machine's threads."""
    import torch

    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(reps):
            a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 * reps / best / 1e9


def train_flops_per_token(config, lora_r: int | None, seq: float) -> float:
    """Model FLOPs of one trained token (see the module docstring)."""
    h, layers = config.hidden_size, config.num_hidden_layers
    kv = config.num_key_value_heads * (h // config.num_attention_heads)
    inter = config.intermediate_size
    per_layer = [(h, h), (h, kv), (h, kv), (h, h), (h, inter), (h, inter), (inter, h)]
    weights = layers * sum(i * o for i, o in per_layer) + h * config.vocab_size
    forward = 2 * weights + 2 * layers * seq * h  # QK^T + AV over the causal half
    if lora_r is None:
        return 3 * forward
    adapters = layers * sum(lora_r * (i + o) for i, o in per_layer)
    return 2 * forward + 3 * 2 * adapters


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


def measure(trainer, flops_per_token, peak_gflops: float) -> dict:
    """Time `train()`; tokens are the non-padding tokens TRL counted (its `num_tokens`)."""
    started = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - started
    tokens = trainer._total_train_tokens
    steps = trainer.state.global_step
    seq = tokens / (steps * trainer.args.per_device_train_batch_size)
    achieved = tokens * flops_per_token(seq) / seconds / 1e9
    return {
        "seconds": round(seconds, 2),
        "tokens": int(tokens),
        "tokens_per_second": round(tokens / seconds, 1),
        "model_gflops": round(achieved, 1),
        "mfu_of_bf16_peak": round(achieved / peak_gflops, 3),
    }


def parse_overrides(items: list[str]) -> dict:
    """`key=value` pairs for params.train, values read as YAML (true, 8, 2e-4)."""
    import yaml

    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--strict", action="store_true", help="plain script without grad ckpt")
    parser.add_argument(
        "--plain-bf16",
        choices=["auto", "true", "false"],
        default="true",
        help="plain script's bf16: true = TRL's default; auto = as the stage",
    )
    parser.add_argument(
        "--stage-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a train param for the stage side, e.g. padding_free=true",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args()

    project = args.project.resolve()
    os.chdir(project)
    module = next(p.name for p in (project / "src").iterdir() if (p / "params.py").exists())
    sys.path.insert(0, str(project / "src"))
    params_mod = __import__(f"{module}.params", fromlist=["load_params"])
    train_mod = __import__(f"{module}.training.trainer", fromlist=["build_trainer"])
    modeling = __import__(f"{module}.models.loading", fromlist=["use_bf16"])
    jsonio = __import__(f"{module}.io", fromlist=["read_jsonl"])

    import torch
    from transformers import AutoConfig

    params = params_mod.load_params()
    train = params.train.model_copy(update=parse_overrides(args.stage_set))
    params = params.model_copy(update={"train": train})
    rows = jsonio.read_jsonl(Path("data/splits/train.jsonl"))
    bf16 = modeling.use_bf16(train.bf16)
    plain_bf16 = {"auto": bf16, "true": True, "false": False}[args.plain_bf16]
    peaks = {
        "fp32": round(matmul_peak_gflops(torch.float32), 1),
        "bf16": round(matmul_peak_gflops(torch.bfloat16), 1),
    }
    config = AutoConfig.from_pretrained("models/base")
    lora_r = None if train.method == "full" else train.lora_r

    def flops_per_token(seq: float) -> float:
        return train_flops_per_token(config, lora_r, seq)

    tmp = Path("/tmp/train-throughput")
    results: dict = {"matmul_peak_gflops": peaks, "stage": [], "plain_trl": [], "pair_ratios": []}

    def stage_trainer(steps: int):
        return train_mod.build_trainer(
            params,
            Path("models/base"),
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
    measure(stage_trainer(2), flops_per_token, peaks["bf16"])
    for pair in range(args.pairs):
        stage = measure(stage_trainer(args.steps), flops_per_token, peaks["bf16"])
        plain_trainer = plain_trl(params, rows, tmp / "plain", args.steps, args.strict, plain_bf16)
        plain = measure(plain_trainer, flops_per_token, peaks["bf16"])
        results["stage"].append(stage)
        results["plain_trl"].append(plain)
        results["pair_ratios"].append(
            round(stage["tokens_per_second"] / plain["tokens_per_second"], 3)
        )
        print(f"pair {pair + 1}: stage {stage} plain {plain}", flush=True)
    results["median_ratio_stage_over_plain"] = statistics.median(results["pair_ratios"])
    results["median_stage_mfu"] = statistics.median(r["mfu_of_bf16_peak"] for r in results["stage"])
    results["settings"] = {
        "steps": args.steps,
        "strict": args.strict,
        "stage_bf16": bf16,
        "plain_bf16": plain_bf16,
        "stage_overrides": parse_overrides(args.stage_set),
        "batch_size": train.batch_size,
        "lora_r": train.lora_r,
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
