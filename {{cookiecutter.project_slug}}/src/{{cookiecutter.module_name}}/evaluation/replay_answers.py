"""The replay stage's rows: data/replay's chats with the base model's own greedy answers
(split.replay_answers: base) or as written (data), and what was kept.

Generated with eval's generator, in train.bf16's precision and batches of BATCH_SIZE (eval's
settings would retrain on a change of eval.batch_size). With replay off nothing is loaded."""

import time
from pathlib import Path

from ..data.chat import prompt_token_ids
from ..data.replay import replay_chats, replay_prompt, with_answers
from ..models.loading import load_for_inference, load_tokenizer
from ..params import Params
from .generation import HFGenerator, Request

BATCH_SIZE = 64


def base_answers(rows: list[dict], base_dir: Path, params: Params) -> list[str | None]:
    """The base's greedy answer to each row's prompt; None where it did not stop in budget."""
    tokenizer = load_tokenizer(base_dir)
    budget = params.split.replay_max_new_tokens
    requests = [Request(tuple(prompt_token_ids(tokenizer, replay_prompt(r))), budget) for r in rows]
    model = load_for_inference(None, base_dir, params.train.bf16)
    generator = HFGenerator(model, tokenizer, BATCH_SIZE)
    generated = generator.token_ids(requests, "replay: the base's answers")
    return [
        generator.decode(tokens) if tokens and tokens[-1] in generator.stops else None
        for tokens in generated
    ]


def replay_rows(params: Params, source: Path, base_dir: Path) -> tuple[list[dict], dict]:
    """(the rows split mixes in, the report: rows kept, dropped, seconds)."""
    split = params.split
    rows = replay_chats(source, split.replay_fraction)
    started = time.perf_counter()
    if rows and split.replay_answers == "base":
        kept = with_answers(rows, base_answers(rows, base_dir, params))
    else:
        kept = rows
    report = {
        "answers": split.replay_answers if rows else None,
        "rows": len(rows),
        "kept": len(kept),
        "dropped_unfinished": len(rows) - len(kept),
        "max_new_tokens": split.replay_max_new_tokens,
        "seconds": round(time.perf_counter() - started, 1),
    }
    return kept, report
