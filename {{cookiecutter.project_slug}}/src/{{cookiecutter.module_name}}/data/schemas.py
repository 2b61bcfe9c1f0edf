"""Pandera schemas for raw training rows and task targets.

Each check's `name` is the reason code written to data/quarantine.jsonl. Checks run in the
order listed and a row is quarantined under the first one it fails, so every rejected row has
exactly one reason.
"""

import json
from typing import Any

import pandas as pd
import pandera.pandas as pa

ROLES = {"system", "user", "assistant"}


def _is_chat(messages: Any) -> bool:
    return (
        isinstance(messages, list)
        and len(messages) > 0
        and all(isinstance(m, dict) for m in messages)
    )


def element_check(name: str, error: str, predicate) -> pa.Check:
    return pa.Check(predicate, element_wise=True, name=name, error=error, ignore_na=False)


CHAT_CHECKS = [
    element_check("missing_messages", "messages must be a non-empty list of objects", _is_chat),
    element_check(
        "unknown_role",
        f"every role must be one of {sorted(ROLES)}",
        lambda m: (
            not _is_chat(m)
            or all(isinstance(turn.get("role"), str) and turn["role"] in ROLES for turn in m)
        ),
    ),
    element_check(
        "missing_content",
        "every turn needs a string content",
        lambda m: not _is_chat(m) or all(isinstance(turn.get("content"), str) for turn in m),
    ),
    element_check(
        "no_user_turn",
        "a chat needs at least one user turn",
        lambda m: not _is_chat(m) or any(turn.get("role") == "user" for turn in m),
    ),
    element_check(
        "no_assistant_turn",
        "a chat needs an assistant turn to learn from",
        lambda m: not _is_chat(m) or any(turn.get("role") == "assistant" for turn in m),
    ),
    element_check(
        "assistant_not_last",
        "the last turn must be the assistant's (it is the training target)",
        lambda m: not _is_chat(m) or m[-1].get("role") == "assistant",
    ),
    element_check(
        "empty_content",
        "no turn may be empty or whitespace",
        lambda m: not _is_chat(m) or all(str(turn.get("content") or "").strip() for turn in m),
    ),
]

# nullable: a null `messages` must reach the checks (and fail the first) rather than fail
# pandera's own not-null check, which has no reason code
CHAT_SCHEMA = pa.DataFrameSchema({"messages": pa.Column(checks=CHAT_CHECKS, nullable=True)})


def parse_leading_json(text: str) -> tuple[Any, str]:
    """Decode the JSON value at the start of `text`; returns (value, trailing text)."""
    stripped = text.strip()
    value, end = json.JSONDecoder().raw_decode(stripped)
    return value, stripped[end:].strip()


def json_target_status(text: str, fields: list[str]) -> str:
    """'ok', or why a target is not exactly one JSON object with the task's keys."""
    try:
        value, trailing = parse_leading_json(text)
    except json.JSONDecodeError:
        return "target_not_json"
    if not isinstance(value, dict):
        return "target_not_json"
    if trailing:
        return "format_drift"
    if fields and sorted(value) != sorted(fields):
        return "target_schema_mismatch"
    return "ok"


def target_schema(fields: list[str]) -> pa.DataFrameSchema:
    """Format audit for JSON targets: targets that start as JSON then drift into prose."""
    checks = [
        element_check(
            code,
            message,
            lambda text, code=code: json_target_status(text, fields) not in {code},
        )
        for code, message in [
            ("target_not_json", "the target is not a JSON object"),
            ("format_drift", "the target starts as JSON and continues with other text"),
            ("target_schema_mismatch", "the target's keys differ from task.fields"),
        ]
    ]
    return pa.DataFrameSchema({"target": pa.Column(checks=checks)})


def first_failures(schema: pa.DataFrameSchema, frame: pd.DataFrame) -> dict[int, str]:
    """Row index -> reason code of the first check (in schema order) that the row fails."""
    try:
        schema.validate(frame, lazy=True)
    except pa.errors.SchemaErrors as errors:
        checks = [check for column in schema.columns.values() for check in column.checks]
        # failure_cases names a check by its error text when one is set
        code = {label: check.name for check in checks for label in (check.name, check.error)}
        order = {check.name: i for i, check in enumerate(checks)}
        cases = errors.failure_cases
        if cases["index"].isna().any():
            # a check raised instead of returning False: a bug in the check, not bad data
            raise RuntimeError(
                f"a schema check crashed:\n{cases[cases['index'].isna()]}"
            ) from errors
        cases = cases.assign(code=lambda c: c["check"].map(code))
        cases = cases.assign(order=cases["code"].map(order))
        cases = cases.sort_values("order", kind="stable")
        cases = cases.drop_duplicates("index")
        return {
            int(index): str(reason)
            for index, reason in zip(cases["index"], cases["code"], strict=True)
        }
    return {}


REASONS = {
    check.name: check.error
    for schema in (CHAT_SCHEMA, target_schema([]))
    for column in schema.columns.values()
    for check in column.checks
}
