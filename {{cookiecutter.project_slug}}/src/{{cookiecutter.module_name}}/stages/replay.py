"""Stage `replay`: the replay rows split mixes into train (split.replay_fraction), with the
base model's own answers (split.replay_answers: base, the default) or data/replay's as written
(data). Writes data/replay_rows.jsonl and reports/replay.json (rows kept, dropped, seconds).

Greedy generation with eval's generator, in train.bf16's precision and batches of BATCH_SIZE
(eval's settings would retrain on a change of eval.batch_size), once per base and replay data:
DVC reruns the stage only when the base, data/replay or these params change. The rows are a
DVC output, so another machine (another precision) reuses them rather than generate its own.
With replay off it writes an empty file without loading a model."""

import time

from ..cli import run_stage
from ..data.chat import prompt_token_ids
from ..data.replay import replay_prompt, with_answers
from ..errors import StageError
from ..evaluation.generation import HFGenerator, Request
from ..io import read_jsonl, write_json, write_jsonl
from ..models.loading import load_for_inference, load_tokenizer
from ..params import load_params
from ..paths import REPLAY, REPLAY_REPORT, REPLAY_ROWS

BATCH_SIZE = 64


def base_answers(rows: list[dict], params) -> list[str | None]:
    """The base's greedy answer to each row's prompt; None where it did not stop in budget."""
    tokenizer = load_tokenizer()
    budget = params.split.replay_max_new_tokens
    requests = [Request(tuple(prompt_token_ids(tokenizer, replay_prompt(r))), budget) for r in rows]
    model = load_for_inference(None, params.train.bf16)
    generator = HFGenerator(model, tokenizer, BATCH_SIZE)
    generated = generator.token_ids(requests, "replay: the base's answers")
    return [
        generator.decode(tokens) if tokens and tokens[-1] in generator.stops else None
        for tokens in generated
    ]


def replay_chats(fraction: float) -> list[dict]:
    """data/replay's chats (none when replay is off); a missing file or a row without a final
    assistant answer stops the stage, naming it."""
    if fraction == 0:
        return []
    if not REPLAY.exists():
        raise StageError(
            f"split.replay_fraction is {fraction} but {REPLAY} does not exist: add it (README "
            "of data/replay) or set split.replay_fraction=0"
        )
    rows = read_jsonl(REPLAY)
    for line, row in enumerate(rows, start=1):
        try:
            replay_prompt(row)
        except (KeyError, TypeError, ValueError) as error:
            raise StageError(
                f"{REPLAY}:{line}: not a chat ending in an assistant answer ({error!r}): "
                '{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}'
            ) from None
    return rows


def main() -> None:
    params = load_params()
    split = params.split
    rows = replay_chats(split.replay_fraction)
    started = time.perf_counter()
    if rows and split.replay_answers == "base":
        kept = with_answers(rows, base_answers(rows, params))
    else:
        kept = rows
    write_jsonl(REPLAY_ROWS, kept)
    report = {
        "answers": split.replay_answers if rows else None,
        "rows": len(rows),
        "kept": len(kept),
        "dropped_unfinished": len(rows) - len(kept),
        "max_new_tokens": split.replay_max_new_tokens,
        "seconds": round(time.perf_counter() - started, 1),
    }
    write_json(REPLAY_REPORT, report)
    if not rows:
        print("replay: off (split.replay_fraction is 0): no replay rows")
        return
    print(
        f"replay: {len(kept)} of {len(rows)} rows with {split.replay_answers} answers "
        f"({report['dropped_unfinished']} unfinished in {report['max_new_tokens']} tokens "
        f"dropped) in {report['seconds']}s"
    )


if __name__ == "__main__":
    run_stage("replay", main)
