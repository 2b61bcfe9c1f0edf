"""Text normalisation shared by dedup, quality filters and the contamination check: words are
runs of letters/digits, case-folded, so punctuation, case and spacing never hide a match."""

import hashlib
import re

from .chat import Messages

WORD = re.compile(r"\w+")
SPACE = re.compile(r"\s+")


def abridge(text: str, head: int = 60, tail: int = 140) -> str:
    """Start and end of a long line: rows share their start (the system prompt) and usually
    go wrong at the end (the target)."""
    return text if len(text) <= head + tail + 5 else f"{text[:head]} ... {text[-tail:]}"


def words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def ngrams(tokens: list[str], n: int) -> list[tuple[str, ...]]:
    """All n-grams of `tokens`; a text shorter than n is one n-gram of its own."""
    if len(tokens) <= n:
        return [tuple(tokens)] if tokens else []
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def content_text(messages: Messages) -> str:
    """What a row says: every non-system turn. A system prompt shared by all rows would make
    unrelated rows look alike."""
    return "\n".join(m["content"] for m in messages if m["role"] != "system")


def prompt_text(messages: Messages) -> str:
    return "\n".join(m["content"] for m in messages[:-1] if m["role"] != "system")


def normalise(text: str) -> str:
    """Whitespace collapsed and stripped, case-folded: what makes two texts the same text."""
    return SPACE.sub(" ", text).strip().casefold()


def exact_key(messages: Messages) -> str:
    """Exact-duplicate key: roles and contents, normalised."""
    text = "\x1e".join(m["role"] + "\x1f" + normalise(m["content"]) for m in messages)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def target_key(text: str) -> str:
    """Key of a normalised target (64 bits of its hash): curate counts targets by this key."""
    return hashlib.sha256(normalise(text).encode("utf-8")).hexdigest()[:16]
