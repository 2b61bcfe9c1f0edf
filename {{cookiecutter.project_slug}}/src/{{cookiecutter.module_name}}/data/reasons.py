"""Every reason curate quarantines a row for, code -> what it means (written beside each
quarantined row and in reports/curate.json)."""

from .formats import FORMAT_REASONS
from .quality import QUALITY_REASONS
from .schemas import REASONS

PARSE_REASONS = {
    "not_utf8": "the line is not valid UTF-8",
    "not_json": "the line is not valid JSON",
    "not_json_object": "the line is JSON but not an object",
}
LENGTH_REASONS = {
    "too_long": "the row is longer than curate.max_tokens (default train.max_length) tokens: "
    "truncation would cut the target",
    "no_trainable_tokens": "no assistant token is left to train on once the chat template is "
    "applied and the row is cut to train.max_length (the prompt alone fills it, or the "
    "template renders no answer): TRL would drop the row silently",
}
ALL_REASONS = {**PARSE_REASONS, **FORMAT_REASONS, **REASONS, **QUALITY_REASONS, **LENGTH_REASONS}
