"""LoRA vs QLoRA on the CPU: training speed and memory of the train stage's own trainer.

Each method trains the project's base model (the embedded SmolLM2-135M after `dvc repro base`)
on the train split for `--steps` optimizer steps with the project's params (batch size,
max_length, bf16 resolution, ...), only `train.method` differing. Each run is its own
process, so its peak RSS (`ru_maxrss`) is its own: the RSS (anonymous and file-backed) and
the peak after building the trainer (loading, and for qlora quantising, the base), and the
peak over training. Runs alternate
(lora, qlora, lora, ...) so a drift in machine speed hits both alike.

Reported per run: trained tokens per second over the steps after the first (non-padding
tokens, as the trainer counts them), the first and last logged loss, the base weights'
memory (the float32 base; for qlora the nf4 weights with their double-quantised scales plus
the layers left in float32) and the peak RSS. Also which bf16 path the CPU took
(`cpu_has_fast_bf16`: native AVX512-BF16/AMX bf16 or none).

Run in a project where `dvc repro base split` has run, with bitsandbytes installed:
    python benchmarks/qlora_cpu.py --project build/demo/support-triage-finetune --steps 10
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

MIB = 1024**2


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def rss_now_mib() -> dict[str, int]:
    """Resident memory now (Linux /proc/self/status): anonymous (tensors the process made)
    and file-backed (pages of mapped files, such as a safetensors file the weights were
    memory-mapped from; the kernel can drop these under memory pressure)."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {key: round(int(fields[key].split()[0]) / 1024) for key in ("RssAnon", "RssFile")}


def base_weight_bytes(model) -> int:
    """Bytes of the base model's weights (LoRA adapters excluded): parameters and buffers,
    and for 4-bit layers the quantisation state (block scales, their second-level scales,
    the nf4 code book) that bitsandbytes keeps beside the packed weights."""
    import bitsandbytes as bnb

    total = sum(
        p.numel() * p.element_size() for name, p in model.named_parameters() if "lora_" not in name
    )
    total += sum(b.numel() * b.element_size() for b in model.buffers())
    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            state = module.weight.quant_state
            tensors = [state.absmax, state.code]
            if state.nested:
                tensors += [state.state2.absmax, state.state2.code, state.offset]
            total += sum(t.numel() * t.element_size() for t in tensors if t is not None)
    return total


def worker(project: Path, method: str, steps: int) -> dict:
    """One training run in this process (run as a subprocess by `main`)."""
    os.chdir(project)
    sys.path.insert(0, str(project / "src"))
    (package,) = [p.name for p in (project / "src").iterdir() if (p / "training").is_dir()]
    params_mod = __import__(f"{package}.params", fromlist=["load_params"])
    train_mod = __import__(f"{package}.training.trainer", fromlist=["build_trainer"])
    modeling = __import__(f"{package}.models.loading", fromlist=["cpu_has_fast_bf16"])
    jsonio = __import__(f"{package}.io", fromlist=["read_jsonl"])

    import torch
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        """(seconds, tokens seen) at the end of every optimizer step."""

        def __init__(self) -> None:
            self.marks: list[tuple[float, int]] = []

        def on_step_end(self, args, state, control, **kwargs):
            self.marks.append((time.perf_counter(), state.num_input_tokens_seen))

    params = params_mod.load_params()
    params = params.model_copy(update={"train": params.train.model_copy(update={"method": method})})
    rows = jsonio.read_jsonl(Path("data/splits/train.jsonl"))
    clock = Clock()
    trainer = train_mod.build_trainer(
        params,
        Path("models/base"),
        rows,
        None,
        Path(f"/tmp/qlora-cpu-{method}"),
        callbacks=[clock],
        max_steps=steps + 1,  # the first step warms up kernels and the allocator: not timed
        save_strategy="no",
        eval_on_start=False,
        disable_tqdm=True,
        logging_steps=1,
        include_num_input_tokens_seen="non_padding",
    )
    loaded, loaded_peak = rss_now_mib(), peak_rss_mib()
    base_bytes = base_weight_bytes(trainer.model)
    trainer.train()
    (t0, tokens0), (t1, tokens1) = clock.marks[0], clock.marks[-1]
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    return {
        "method": method,
        "steps_timed": len(clock.marks) - 1,
        "tokens": tokens1 - tokens0,
        "seconds": round(t1 - t0, 2),
        "tokens_per_second": round((tokens1 - tokens0) / (t1 - t0), 1),
        "loss_first": round(losses[0], 4),
        "loss_last": round(losses[-1], 4),
        "base_weights_mib": round(base_bytes / MIB, 1),
        "rss_anon_after_load_mib": loaded["RssAnon"],
        "rss_file_after_load_mib": loaded["RssFile"],
        "peak_rss_after_load_mib": round(loaded_peak),
        "peak_rss_mib": round(peak_rss_mib()),
        "rss_anon_at_end_mib": rss_now_mib()["RssAnon"],
        "bf16": trainer.args.bf16,
        "cpu_has_fast_bf16": modeling.cpu_has_fast_bf16(),
        "threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=10, help="timed steps (after 1 warm-up)")
    parser.add_argument("--repeats", type=int, default=2, help="runs per method, alternating")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    parser.add_argument("--worker", choices=["lora", "qlora"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    project = args.project.resolve()
    if args.worker:
        print(json.dumps(worker(project, args.worker, args.steps)))
        return

    runs: list[dict] = []
    for _ in range(args.repeats):
        for method in ("lora", "qlora"):
            command = [sys.executable, __file__, "--project", str(project)]
            command += ["--steps", str(args.steps), "--worker", method]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                sys.exit(f"{method} run failed:\n{done.stderr[-3000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(runs[-1]), flush=True)
    summary = {}
    for method in ("lora", "qlora"):
        mine = [r for r in runs if r["method"] == method]
        summary[method] = {
            "median_tokens_per_second": statistics.median(r["tokens_per_second"] for r in mine),
            "base_weights_mib": mine[0]["base_weights_mib"],
            "median_peak_rss_mib": statistics.median(r["peak_rss_mib"] for r in mine),
        }
    result = {"steps": args.steps, "runs": runs, "summary": summary}
    print(json.dumps(summary, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
