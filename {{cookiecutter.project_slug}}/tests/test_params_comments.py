"""params.yaml's comments say what the schema (params.py) says: every key is a schema field; a
key commented in params.yaml has a description in the schema and the other way round; the
special values explained (`null = ...`, `auto = ...`, `0 = off`) are the same in both; the
choices a comment lists (`a | b | c`) are the field's; a range stated (`0.1-0.2`) is its bounds."""

import re
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from {{ cookiecutter.module_name }}.params import Params

PARAMS_YAML = Path(__file__).parents[1] / "params.yaml"
KEY = re.compile(r"^( *)([A-Za-z_]\w*):(.*)$")
SENTINEL = re.compile(r"(?:^|[;(,:] ?)(null|auto|\d+) = ")
# `a | b (why) | c`: the choices, each maybe followed by a parenthesis
CHOICES = re.compile(r"[\w-]+(?: \([^)]*\))?(?: \| [\w-]+(?: \([^)]*\))?)+")
RANGE = re.compile(r"^([\d.]+)-([\d.]+);")


def comments(text: str) -> dict[str, str]:
    """Each key path of params.yaml -> its comment: the one after its value and the comment
    lines below that start in the same column ("" where none)."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    last: tuple[str, int] | None = None  # the key whose comment a line may continue, its column
    for line in text.splitlines():
        if key := KEY.match(line):
            indent, name, rest = len(key.group(1)), key.group(2), key.group(3)
            stack = [(i, k) for i, k in stack if i < indent] + [(indent, name)]
            path = ".".join(k for _, k in stack)
            mark = rest.find(" #")
            found[path] = rest[mark + 2 :].strip() if mark >= 0 else ""
            last = (path, line.index("#", indent)) if mark >= 0 else None
        elif line.strip().startswith("#") and last and line.index("#") == last[1]:
            found[last[0]] += " " + line.strip().lstrip("#").strip()
        else:
            last = None
    return found


def field(path: str) -> FieldInfo | None:
    model: Any = Params
    info = None
    for part in path.split("."):
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        if part not in model.model_fields:
            return None
        info = model.model_fields[part]
        model = info.annotation
    return info


def is_section(info: FieldInfo) -> bool:
    return isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)


def choices(annotation: Any) -> set[str] | None:
    """The values a Literal field (possibly optional, or a union with a list) takes."""
    if typing.get_origin(annotation) is typing.Literal:
        return {str(v) for v in typing.get_args(annotation)}
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        parts = [choices(arg) for arg in typing.get_args(annotation)]
        allowed = set().union(*(p for p in parts if p is not None))
        if type(None) in typing.get_args(annotation):
            allowed.add("null")
        return allowed or None
    return None


def sentinels(text: str) -> set[str]:
    return set(SENTINEL.findall(text or ""))


COMMENTS = comments(PARAMS_YAML.read_text(encoding="utf-8"))
LEAVES = {path: info for path in COMMENTS if (info := field(path)) and not is_section(info)}
# A params.yaml rewritten by a tool that drops comments (yaml.safe_dump) has nothing to disagree
# with the schema: the comment checks apply to the file as the template writes it.
uncommented_file = pytest.mark.skipif(
    not any(COMMENTS.values()), reason="params.yaml carries no comments (rewritten by a tool)"
)


def test_every_params_yaml_key_is_a_schema_field() -> None:
    assert len(COMMENTS) > 100
    unknown = [path for path in COMMENTS if field(path) is None]
    assert not unknown, f"params.yaml keys the schema lacks: {unknown}"


@uncommented_file
def test_comment_and_description_go_together() -> None:
    """A knob worth a comment in params.yaml is worth a description in the schema (`check_params`
    and pydantic's errors show the schema), and the other way round."""
    undescribed = [p for p, info in LEAVES.items() if COMMENTS[p] and not info.description]
    uncommented = [p for p, info in LEAVES.items() if info.description and not COMMENTS[p]]
    assert not undescribed, f"commented in params.yaml, no description in params.py: {undescribed}"
    assert not uncommented, f"described in params.py, no comment in params.yaml: {uncommented}"


@uncommented_file
@pytest.mark.parametrize("path", sorted(LEAVES))
def test_comment_agrees_with_the_schema(path: str) -> None:
    comment, info = COMMENTS[path], LEAVES[path]
    assert sentinels(comment) == sentinels(info.description), (
        f"{path}: special values explained in params.yaml {sorted(sentinels(comment))} vs "
        f"params.py {sorted(sentinels(info.description))}"
    )
    allowed = choices(info.annotation)
    plain = re.sub(r" \([^)]*\)", "", " ".join(CHOICES.findall(comment)))
    listed = set(plain.split()) - {"|"}
    if allowed is not None and listed:
        assert listed <= allowed, f"{path}: the comment lists {sorted(listed - allowed)}"
        missing = {a for a in allowed - {"null"} if not re.search(rf"\b{a}\b", comment)}
        assert not missing, f"{path}: the comment does not name {sorted(missing)}"
    if bounds := RANGE.match(comment):
        limits = {k: getattr(m, k) for m in info.metadata for k in ("ge", "le") if hasattr(m, k)}
        lo, hi = (float(b) for b in bounds.groups())
        assert (limits.get("ge"), limits.get("le")) == (lo, hi), f"{path}: range {lo}-{hi}"
