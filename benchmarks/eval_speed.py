"""Eval generation speed: the eval stage's batched generator vs one-by-one `model.generate`.

Both generate greedily, on the same model, for the same requests (the demo's val rows and
general-suite items, each with its suite's token budget, formatted by the stage's own code),
stopping at end of turn. "sequential" is what a script without batching does: one
`model.generate` call per prompt. "batched" is the stage's `HFGenerator` (length-sorted
batches, a shared prompt prefix computed once, finished rows dropped from the batch).
Reported: seconds, items per second, the ratio, and the share of identical outputs.

    python benchmarks/eval_speed.py --project build/demo/support-triage-finetune
    python benchmarks/eval_speed.py --project DIR --mode batched --limit 20   # one side only

Run in a project where `dvc repro split base` has run (e.g. after `make demo`); `--checkpoint`
picks a checkpoint instead of the base model.
"""

import argparse
import importlib
import json
import os
import sys
import time
from pathlib import Path


def sequential(model, tokenizer, requests, stops: list[int]) -> list[str]:
    import torch

    outputs = []
    with torch.inference_mode():
        for request in requests:
            ids = torch.tensor([request.prompt_ids])
            generated = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=request.max_new_tokens,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
            )
            new = generated[0, ids.shape[1] :]
            outputs.append(tokenizer.decode(new, skip_special_tokens=True).strip())
    return outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--mode", choices=["both", "batched", "sequential"], default="both")
    parser.add_argument("--limit", type=int, default=None, help="first N requests per suite")
    parser.add_argument("--checkpoint", default=None, help="e.g. checkpoint-92")
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON")
    args = parser.parse_args()

    project = args.project.resolve()
    os.chdir(project)
    sys.path.insert(0, str(project / "src"))
    (package,) = [p.name for p in (project / "src").iterdir() if (p / "evaluation").is_dir()]
    backend = importlib.import_module(f"{package}.evaluation.backend")
    evaluate = importlib.import_module(f"{package}.evaluation.eval_set")
    generation = importlib.import_module(f"{package}.evaluation.generation")
    jsonio = importlib.import_module(f"{package}.io")
    modeling = importlib.import_module(f"{package}.models.loading")
    params = importlib.import_module(f"{package}.params").load_params()
    paths = importlib.import_module(f"{package}.paths")

    tokenizer = modeling.load_tokenizer(paths.BASE_MODEL_DIR)
    rows = jsonio.read_jsonl(paths.VAL_SPLIT)
    eval_set = evaluate.build_eval_set(
        tokenizer,
        rows,
        evaluate.load_general_items(params.eval, paths.GENERAL_QA_SUITE, paths.INSTRUCTION_SUITE),
        params.eval,
    )
    # the stage's two generation calls: the task rows, then the general items
    suites = [eval_set.task[: args.limit], eval_set.general[: args.limit]]
    requests = [request for suite in suites for request in suite]
    checkpoint = paths.CHECKPOINTS_DIR / args.checkpoint if args.checkpoint else None
    model = backend.load_for_generation(checkpoint, paths.BASE_MODEL_DIR, params.eval)
    batched = generation.HFGenerator(model, tokenizer, params.eval.batch_size)

    result = {
        "model": args.checkpoint or "base",
        "requests": len(requests),
        "batch_size": params.eval.batch_size,
        "threads": __import__("torch").get_num_threads(),
    }
    outputs = {}
    for mode in ("batched", "sequential"):
        if args.mode not in ("both", mode):
            continue
        started = time.perf_counter()
        if mode == "batched":
            outputs[mode] = [text for suite in suites for text in batched(suite, "batched")]
        else:
            outputs[mode] = sequential(model, tokenizer, requests, batched.stops)
        seconds = time.perf_counter() - started
        result[f"{mode}_seconds"] = round(seconds, 2)
        result[f"{mode}_items_per_second"] = round(len(requests) / seconds, 2)
    if len(outputs) == 2:
        result["speedup"] = round(result["sequential_seconds"] / result["batched_seconds"], 2)
        same = sum(a == b for a, b in zip(outputs["batched"], outputs["sequential"], strict=True))
        result["identical_outputs"] = round(same / len(requests), 4)
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
