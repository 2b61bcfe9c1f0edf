"""Where the demo's minutes go: before/after pairs measured in one process, on the real model.

Run inside a baked project where `dvc repro split` has run (e.g. after `make demo`):

    python benchmarks/where_minutes_go.py --project build/demo/support-triage-finetune \
        --out where_minutes_go.json

Three comparisons, each run alternately (A, B, A, B, ...) after one warm-up, medians reported:

- **batching**: `steps` optimizer steps of the train stage's own trainer (build_trainer, the
  project's params) with padded batches (the default, length-grouped), `padding_free: true`
  and `packing: true`, on the same train rows from the same seed: seconds per step, trained
  tokens per second, and the mean logged train loss (the same rows must give the same loss
  within noise for a setting to be a pure speed change).
- **val loss**: the trainer's own val pass (`trainer.evaluate()` at the train batch size, what
  the train stage ran at every checkpoint before) against eval's val_loss() on the same model
  and val rows: seconds per pass and both values.
- **general suite**: eval's generation of the first 32 general-QA items (the old default
  `eval.general_qa_limit`) against all of them, on the base: seconds and items.
"""

import argparse
import json
import statistics
import sys
import time
from pathlib import Path


def timed(function) -> tuple[float, object]:
    started = time.perf_counter()
    value = function()
    return time.perf_counter() - started, value


def batching(params, rows: list[dict], steps: int, pairs: int, tmp: Path) -> dict:
    """Seconds per step, tokens/s and mean train loss for each batching setting."""
    from support_triage_finetune.paths import BASE_MODEL_DIR
    from support_triage_finetune.training.trainer import build_trainer

    variants = {
        "padded": {},
        "padding_free": {"padding_free": True},
        "packing": {"packing": True},
    }

    def run(name: str) -> dict:
        train = params.train.model_copy(update=variants[name])
        trainer = build_trainer(
            params.model_copy(update={"train": train}),
            BASE_MODEL_DIR,
            rows,
            None,
            tmp / name,
            max_steps=steps,
            save_strategy="no",
            logging_steps=1,
            disable_tqdm=True,
        )
        seconds, _ = timed(trainer.train)
        logged = [e for e in trainer.state.log_history if "loss" in e]
        # TRL logs the non-padding tokens seen so far: the last log counts the whole run
        tokens = float(logged[-1].get("num_tokens", 0))
        return {
            "seconds_per_step": seconds / steps,
            "tokens_per_second": tokens / seconds,
            "mean_loss": statistics.fmean(e["loss"] for e in logged),
        }

    for name in variants:  # warm-up
        run(name)
    runs: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(pairs):
        for name in variants:
            runs[name].append(run(name))
    result = {}
    padded = statistics.median(r["seconds_per_step"] for r in runs["padded"])
    for name, measured in runs.items():
        per_step = statistics.median(r["seconds_per_step"] for r in measured)
        result[name] = {
            "seconds_per_step": round(per_step, 3),
            "tokens_per_second": round(statistics.median(r["tokens_per_second"] for r in measured)),
            "mean_loss": round(statistics.median(r["mean_loss"] for r in measured), 4),
            "time_ratio_vs_padded": round(per_step / padded, 3),
        }
    return result


def val_loss_pass(params, val_rows: list[dict], pairs: int, tmp: Path) -> dict:
    """The trainer's val pass against eval's forward pass, on the base model."""
    from support_triage_finetune.data.masking import ChatEncoder
    from support_triage_finetune.evaluation.backend import load_for_generation
    from support_triage_finetune.evaluation.val_loss import cut, val_loss
    from support_triage_finetune.models.loading import load_tokenizer
    from support_triage_finetune.paths import BASE_MODEL_DIR
    from support_triage_finetune.training.trainer import build_trainer

    trainer = build_trainer(
        params,
        BASE_MODEL_DIR,
        val_rows[:8],
        val_rows,
        tmp / "val",
        per_device_eval_batch_size=params.train.batch_size,  # as the train stage had it
        disable_tqdm=True,
    )
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    encoder = ChatEncoder(tokenizer, params.train.assistant_turns)
    encoded = cut(encoder([r["prompt"] + r["completion"] for r in val_rows]), 10**9)
    model = load_for_generation(None, BASE_MODEL_DIR, params.eval)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    old = lambda: trainer.evaluate()["eval_loss"]  # noqa: E731
    new = lambda: val_loss(model, encoded, pad)  # noqa: E731
    old(), new()  # warm-up
    times: dict[str, list[float]] = {"trainer": [], "eval": []}
    values = {}
    for _ in range(pairs):
        seconds, values["trainer"] = timed(old)
        times["trainer"].append(seconds)
        seconds, values["eval"] = timed(new)
        times["eval"].append(seconds)
    trainer_s, eval_s = (statistics.median(times[k]) for k in ("trainer", "eval"))
    return {
        "rows": len(val_rows),
        "trainer_seconds": round(trainer_s, 2),
        "eval_seconds": round(eval_s, 2),
        "time_ratio_eval_vs_trainer": round(eval_s / trainer_s, 3),
        "trainer_loss": round(values["trainer"], 4),
        "eval_loss": values["eval"],
        "eval_bf16": params.eval.bf16,
    }


def general_suite(params, pairs: int) -> dict:
    """Generation seconds for the first 32 general-QA items vs all of them, on the base."""
    from support_triage_finetune.evaluation.backend import generator_factory
    from support_triage_finetune.evaluation.eval_set import build_eval_set, load_general_items
    from support_triage_finetune.models.loading import load_tokenizer
    from support_triage_finetune.paths import BASE_MODEL_DIR, GENERAL_QA_SUITE, INSTRUCTION_SUITE

    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    generate = generator_factory(params.eval, tokenizer, BASE_MODEL_DIR)(None)
    sets = {}
    for limit in (32, None):
        eval_params = params.eval.model_copy(update={"general_qa_limit": limit})
        suites = (GENERAL_QA_SUITE, INSTRUCTION_SUITE)
        items = [i for i in load_general_items(eval_params, *suites) if i[0] == "general_qa"]
        sets[limit] = build_eval_set(tokenizer, [], items, eval_params).general
    generate(sets[32], "warm-up")
    times: dict[object, list[float]] = {32: [], None: []}
    for _ in range(pairs):
        for limit, requests in sets.items():
            times[limit].append(timed(lambda r=requests: generate(r, "general"))[0])
    first, every = (statistics.median(times[k]) for k in (32, None))
    return {
        "items_first_32": len(sets[32]),
        "items_all": len(sets[None]),
        "seconds_first_32": round(first, 2),
        "seconds_all": round(every, 2),
        "time_ratio_all_vs_32": round(every / first, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--only", choices=("batching", "val_loss", "general"), default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    project = args.project.resolve()
    sys.path.insert(0, str(project / "src"))
    import os
    import tempfile

    os.chdir(project)
    from support_triage_finetune.io import read_jsonl
    from support_triage_finetune.params import load_params
    from support_triage_finetune.paths import TRAIN_SPLIT, VAL_SPLIT

    params = load_params()
    results: dict[str, object] = {"params": params.train.model_dump(include={"batch_size"})}
    with tempfile.TemporaryDirectory(prefix="minutes-") as tmp:
        if args.only in (None, "val_loss"):
            results["val_loss"] = val_loss_pass(
                params, read_jsonl(VAL_SPLIT), args.pairs, Path(tmp)
            )
            print(json.dumps(results["val_loss"]), flush=True)
        if args.only in (None, "general"):
            results["general_suite"] = general_suite(params, args.pairs)
            print(json.dumps(results["general_suite"]), flush=True)
        if args.only in (None, "batching"):
            rows = read_jsonl(TRAIN_SPLIT)
            results["batching"] = batching(params, rows, args.steps, args.pairs, Path(tmp))
            print(json.dumps(results["batching"]), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
