"""Input formats of data/raw files and how each becomes a chat.

A file's format is auto-detected from the keys of its rows (or set per file with
`curate.formats`); every row is then checked against that format's pandera schema, so a row
that does not fit is quarantined with a reason instead of being guessed at.

| format            | keys                                     | becomes                        |
| ----------------- | ---------------------------------------- | ------------------------------ |
| chat              | messages                                 | the messages                   |
| sharegpt          | conversations (turns of from/value)      | the turns, roles mapped        |
| prompt_completion | prompt, completion (strings or messages) | user prompt + assistant turn   |
| alpaca            | instruction, input (optional), output    | user instruction + assistant   |
| preference        | prompt, chosen, rejected                 | a DPO pair (prompt + chosen)   |
"""

from collections import Counter
from collections.abc import Iterable
from itertools import islice
from typing import Any

import pandera.pandas as pa

from ..params import InputFormat as Format
from .chat import Messages
from .schemas import element_check

FORMATS: tuple[Format, ...] = ("chat", "sharegpt", "preference", "prompt_completion", "alpaca")
FORMAT_KEYS: dict[Format, frozenset[str]] = {
    "chat": frozenset({"messages"}),
    "sharegpt": frozenset({"conversations"}),
    "preference": frozenset({"prompt", "chosen", "rejected"}),
    "prompt_completion": frozenset({"prompt", "completion"}),
    "alpaca": frozenset({"instruction", "output"}),
}
OPTIONAL_KEYS: dict[Format, frozenset[str]] = {"alpaca": frozenset({"input", "system"})}
SHAREGPT_ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
}
"""ShareGPT's `from` values (Vicuna's human/gpt, and the role names later dumps use); any
other is kept, so the chat schema quarantines it as `unknown_role`."""
DETECT_ROWS = 200


def matching_format(row: dict[str, Any]) -> Format | None:
    """The first format (in FORMATS order: preference before its subset prompt/completion)
    whose keys the row has."""
    for name in FORMATS:
        if FORMAT_KEYS[name] <= row.keys():
            return name
    return None


def detect_format(rows: Iterable[dict[str, Any]]) -> Format | None:
    """The format most of the first DETECT_ROWS object rows match; None when none match."""
    votes = Counter(
        fmt for fmt in map(matching_format, islice(rows, DETECT_ROWS)) if fmt is not None
    )
    return votes.most_common(1)[0][0] if votes else None


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _text_or_turns(value: Any) -> bool:
    """A non-empty string, or a non-empty list of messages (checked later by the chat schema)."""
    return _text(value) or (isinstance(value, list) and len(value) > 0)


ROW_CHECKS: dict[Format, list[pa.Check]] = {
    "chat": [],  # the chat schema checks `messages` itself
    "sharegpt": [],  # and the turns a ShareGPT row becomes
    "prompt_completion": [
        element_check(
            "empty_prompt_or_completion",
            "prompt or completion is missing, empty, or neither a string nor a list of turns",
            lambda row: _text_or_turns(row.get("prompt")) and _text_or_turns(row.get("completion")),
        )
    ],
    "alpaca": [
        element_check(
            "empty_instruction_or_output",
            "instruction or output is missing or empty, or input is not a string",
            lambda row: (
                _text(row.get("instruction"))
                and _text(row.get("output"))
                and isinstance(row.get("input", ""), str)
            ),
        )
    ],
    "preference": [
        element_check(
            "empty_preference_field",
            "prompt, chosen or rejected is missing, empty, or not a string / list of turns",
            lambda row: all(_text_or_turns(row.get(k)) for k in ("prompt", "chosen", "rejected")),
        ),
        element_check(
            "identical_chosen_rejected",
            "chosen and rejected are the same answer: the pair teaches nothing",
            lambda row: (
                not _text_or_turns(row.get("chosen"))
                or str(row.get("chosen")).strip() != str(row.get("rejected")).strip()
            ),
        ),
    ],
}
FORMAT_REASONS = {check.name: check.error for checks in ROW_CHECKS.values() for check in checks}
ROW_SCHEMAS = {
    name: pa.DataFrameSchema({"row": pa.Column(object, checks=checks)})
    for name, checks in ROW_CHECKS.items()
}


def _turns(value: Any, role: str) -> Messages:
    return value if isinstance(value, list) else [{"role": role, "content": value}]


def sharegpt_turns(conversations: Any) -> Any:
    """ShareGPT's `[{"from": "human", "value": ...}, {"from": "gpt", ...}]` as chat messages;
    anything that is not a list of objects is returned as is, for the chat schema to reject."""
    if not isinstance(conversations, list) or not all(isinstance(t, dict) for t in conversations):
        return conversations
    roles = [SHAREGPT_ROLES.get(turn.get("from"), turn.get("from")) for turn in conversations]
    return [
        {"role": role, "content": turn.get("value")}
        for role, turn in zip(roles, conversations, strict=True)
    ]


def to_messages(row: dict[str, Any], fmt: Format) -> Messages:
    """The row as one chat whose last turn is the training target (for a preference row:
    the chosen answer)."""
    if fmt == "chat":
        return row.get("messages")  # a missing list fails the chat schema's first check
    if fmt == "sharegpt":
        return sharegpt_turns(row.get("conversations"))
    if fmt == "alpaca":
        instruction = row["instruction"].strip()
        extra = (row.get("input") or "").strip()
        system = [{"role": "system", "content": row["system"]}] if _text(row.get("system")) else []
        user = f"{instruction}\n\n{extra}" if extra else instruction
        return [*system, {"role": "user", "content": user}, *_turns(row["output"], "assistant")]
    answer = row["completion"] if fmt == "prompt_completion" else row["chosen"]
    return _turns(row["prompt"], "user") + _turns(answer, "assistant")


def rejected_turns(row: dict[str, Any]) -> Messages:
    return _turns(row["rejected"], "assistant")


def metadata(row: dict[str, Any], fmt: Format) -> dict[str, Any]:
    """Extra top-level scalar fields of a row (e.g. a category label), kept for stratifying."""
    known = FORMAT_KEYS[fmt] | OPTIONAL_KEYS.get(fmt, frozenset())
    return {
        key: value
        for key, value in row.items()
        if key not in known and isinstance(value, str | int | float | bool)
    }
