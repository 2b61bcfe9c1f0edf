"""The prompts of one eval run, as token ids: the task rows, the general suites' items, the
val rows as trained (for the val loss) and the few-shot baseline's prompts."""

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..data.chat import fewshot_prompt, prompt_token_ids, user_prompt
from ..data.masking import AssistantTurns, ChatEncoder, Encoded
from ..params import EvalParams, Params
from .generation import Request
from .metric_names import GENERAL_QA, INSTRUCTION_FOLLOW
from .suites import load_suite
from .val_loss import cut


@dataclass(frozen=True)
class EvalSet:
    """The prompts of one eval run as token ids, built once and shared by every model."""

    rows: list[dict]
    task: list[Request]
    general_items: list[tuple[str, dict]]  # (suite, item)
    general: list[Request]
    val: tuple[Encoded, ...] = ()  # the val rows as trained (prompt + answer): the val loss


def load_general_items(
    params: EvalParams, qa_suite: Path, instruction_suite: Path
) -> list[tuple[str, dict]]:
    """The first eval.general_qa_limit and eval.instruction_limit items of the two suites."""
    qa = load_suite(qa_suite)[: params.general_qa_limit]
    instructions = load_suite(instruction_suite)[: params.instruction_limit]
    return [(GENERAL_QA, item) for item in qa] + [
        (INSTRUCTION_FOLLOW, item) for item in instructions
    ]


def task_requests(tokenizer, prompts: Sequence, max_new_tokens: int) -> list[Request]:
    return [Request(tuple(prompt_token_ids(tokenizer, p)), max_new_tokens) for p in prompts]


def build_eval_set(
    tokenizer,
    rows: list[dict],
    general_items: list[tuple[str, dict]],
    params: EvalParams,
    loss_rows: tuple[AssistantTurns, int] | None = None,
) -> EvalSet:
    """QA and instruction items go in one request list (each with its own token budget), so
    they share batches. `loss_rows` (train.assistant_turns, train.max_length): the val rows
    are also encoded as the trainer encodes them, for the val loss."""
    budget = {
        GENERAL_QA: params.max_new_tokens_qa,
        INSTRUCTION_FOLLOW: params.max_new_tokens_instruction,
    }
    general = [
        Request(
            tuple(prompt_token_ids(tokenizer, user_prompt(item.get("question") or item["prompt"]))),
            budget[suite],
        )
        for suite, item in general_items
    ]
    task = task_requests(tokenizer, [r["prompt"] for r in rows], params.max_new_tokens_task)
    val: tuple[Encoded, ...] = ()
    if loss_rows is not None:
        turns, max_length = loss_rows
        chats = [r["prompt"] + r["completion"] for r in rows]
        val = tuple(cut(ChatEncoder(tokenizer, turns)(chats), max_length))
    return EvalSet(rows, task, general_items, general, val)


def fewshot_examples(train_rows: list[dict], k: int, seed: int) -> list[dict]:
    """k task rows of train (replay rows are general data, not the task), the same for
    every val row, drawn with the run's seed."""
    task_rows = [row for row in train_rows if row.get("origin") != "replay"]
    ordered = sorted(task_rows, key=lambda row: row["id"])
    return random.Random(seed).sample(ordered, min(k, len(ordered)))


def fewshot_requests(
    tokenizer, rows: list[dict], train_rows: list[dict], params: Params
) -> list[Request] | None:
    """The few-shot baseline's requests for `rows` (None when eval.fewshot_k is 0): each
    row's prompt after the same k solved train examples."""
    if not params.eval.fewshot_k:
        return None
    examples = fewshot_examples(train_rows, params.eval.fewshot_k, params.seed)
    prompts = [fewshot_prompt(row["prompt"], examples) for row in rows]
    return task_requests(tokenizer, prompts, params.eval.max_new_tokens_task)
