"""Quality filters: rows that are valid but would teach the model the wrong thing.

Each filter returns a reason code or None; `quality_reason` gives the first that fires. The
thresholds come from `curate.quality` in params.yaml.
"""

import re
import unicodedata
from collections import Counter

from ..params import QualityParams
from .chat import Messages
from .textnorm import ngrams, prompt_text, words

# Mojibake (UTF-8 read as Latin-1/CP-1252), the replacement character, and control characters
# other than tab/newline: text that was damaged on its way into the data set.
BROKEN = re.compile(r"\ufffd|Ã[\x80-\xbf]|â€|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

QUALITY_REASONS = {
    "target_too_short": "the target is shorter than curate.quality.min_target_chars",
    "target_too_long": "the target is longer than curate.quality.max_target_chars",
    "repetitive_target": "the target repeats itself (share of repeated word 3-grams above "
    "curate.quality.max_repetition)",
    "target_copies_prompt": "the target mostly copies the prompt (share of its word 3-grams "
    "found in the prompt above curate.quality.max_prompt_copy)",
    "broken_characters": "mojibake, replacement or control characters in the text",
    "charset_outlier": "the text is mostly in a script other than the data set's "
    "(curate.quality.scripts)",
    "placeholder_target": "the target is a placeholder (N/A, unknown, (no description), ...) "
    "written for many rows: copies beyond curate.keep_target_copies",
    "dominant_target": "one target answers more than curate.max_target_share of the rows: "
    "copies beyond curate.keep_target_copies",
}

# Targets that stand in for a missing answer (compared as words, so case and punctuation do
# not matter); a target with no letters or digits at all ("-", "...", "?") is one too.
PLACEHOLDERS = {
    "n a", "na", "none", "null", "nil", "nan", "unknown", "no description", "tbd", "todo",
    "no answer", "not available", "not applicable",
}  # fmt: skip


def repetition(grams: list[tuple[str, ...]]) -> float:
    """Share of word 3-grams that repeat an earlier one (0 for short texts)."""
    if len(grams) < 4:
        return 0.0
    return 1 - len(set(grams)) / len(grams)


def prompt_copy(grams: list[tuple[str, ...]], prompt: str) -> float:
    """Share of the target's word 3-grams that also occur in the prompt."""
    if len(grams) < 3:
        return 0.0
    prompt_grams = set(ngrams(words(prompt), 3))
    return sum(gram in prompt_grams for gram in grams) / len(grams)


KANA = {"HIRAGANA", "KATAKANA", "KATAKANA-HIRAGANA"}  # Japanese mixes kana and kanji (CJK)
MIN_SCRIPT_SHARE = 0.02  # `auto`: a script dominant in fewer rows than this is an outlier,
MIN_SCRIPT_ROWS = 3  # and so is one dominant in fewer rows than this (on small data)


def script_of(char: str) -> str:
    """A letter's script: the first word of its Unicode name, with full/half-width forms
    folded into their script and kana into CJK (one Japanese sentence is one script)."""
    if char.isascii():
        return "LATIN"
    words = unicodedata.name(char, "UNKNOWN").split(" ")
    if words[0] in {"FULLWIDTH", "HALFWIDTH"} and len(words) > 1:
        words = words[1:]
    return "CJK" if words[0] in KANA else words[0]


def dominant_script(text: str) -> str | None:
    """The Unicode script most letters belong to (LATIN, CYRILLIC, CJK, ...); None without
    letters. ASCII text is LATIN without looking at each character."""
    if text.isascii():
        return "LATIN" if any(c.isalpha() for c in text) else None
    counts = Counter(script_of(c) for c in text if c.isalpha())
    return counts.most_common(1)[0][0] if counts else None


def quality_reason(messages: Messages, quality: QualityParams) -> str | None:
    """The first quality filter the row fails, or None. The script check needs the whole data
    set and runs after pass 1 (see `allowed_scripts` and `Curator.finish`)."""
    target = messages[-1]["content"]
    stripped = target.strip()
    if len(stripped) < quality.min_target_chars:
        return "target_too_short"
    if len(stripped) > quality.max_target_chars:
        return "target_too_long"
    if any(BROKEN.search(m["content"]) for m in messages):
        return "broken_characters"
    grams = ngrams(words(target), 3)
    if repetition(grams) > quality.max_repetition:
        return "repetitive_target"
    if prompt_copy(grams, prompt_text(messages)) > quality.max_prompt_copy:
        return "target_copies_prompt"
    return None


def is_placeholder(target: str) -> bool:
    """Whether the target is a stand-in for a missing answer rather than an answer."""
    tokens = words(target)
    return not tokens or " ".join(tokens) in PLACEHOLDERS


def allowed_scripts(scripts: Counter, setting: list[str] | str) -> set[str]:
    """`auto`: the most common script, and every other one dominant in at least
    MIN_SCRIPT_SHARE of the rows and in MIN_SCRIPT_ROWS rows (a language with a few dozen rows
    in a thousand is data; one stray row is noise)."""
    if setting != "auto":
        return {script.upper() for script in setting}
    total = sum(scripts.values())
    return {script for script, _ in scripts.most_common(1)} | {
        script
        for script, n in scripts.items()
        if n >= MIN_SCRIPT_ROWS and n >= MIN_SCRIPT_SHARE * total
    }
