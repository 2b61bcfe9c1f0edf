"""The target policy: the distribution of the kept rows' normalised targets, and the
findings that stop a model from learning to print one answer (a placeholder, or one target for
most rows of free-text data)."""

from collections import Counter
from typing import Any

from ..errors import StageError
from ..params import CurateParams
from .quality import is_placeholder
from .textnorm import words

TOP_TARGETS = 10


def target_summary(
    counts: Counter, examples: dict[str, tuple[str, str]], cfg: CurateParams
) -> dict[str, Any]:
    """The distribution of normalised targets and its findings: a placeholder target (N/A,
    unknown, ...) or, when the targets are free text, one target above cfg.max_target_share.
    A label set (few distinct targets, each repeated) is a classifier and never fires, but
    one target for every row is no classifier; a target written at most
    cfg.keep_target_copies times is never a finding."""
    rows = sum(counts.values())
    singletons = sum(1 for n in counts.values() if n == 1)
    free_text = singletons * 2 >= len(counts) > 1
    one_answer = len(counts) == 1
    top = [
        {
            "target": examples[key][1],
            "count": n,
            "share": round(n / rows, 4),
            "placeholder": is_placeholder(examples[key][1]),
        }
        for key, n in counts.most_common(TOP_TARGETS)
    ]
    findings = []
    for key, n in counts.most_common():
        if n <= cfg.keep_target_copies:
            break
        source, text = examples[key]
        if is_placeholder(text) and (free_text or one_answer or not words(text)):
            reason = "placeholder_target"
        elif (free_text or one_answer) and n / rows > cfg.max_target_share:
            reason = "dominant_target"
        else:
            continue
        findings.append(
            {"key": key, "target": text, "reason": reason, "count": n, "share": round(n / rows, 4)}
            | {"example": source}
        )
    return {
        "rows": rows,
        "distinct": len(counts),
        "free_text": free_text,
        "top": top,
        "findings": findings,
        "policy": cfg.dominant_target,
        "keep_copies": cfg.keep_target_copies,
    }


def target_error(finding: dict[str, Any]) -> StageError:
    kind = "a placeholder" if finding["reason"] == "placeholder_target" else "one"
    return StageError(
        f"{finding['example']}: {kind} target {finding['target']!r} answers "
        f"{finding['share']:.0%} of the rows ({finding['count']}); a model trained on it learns "
        "to print it. Fix or drop those rows, or set curate.dominant_target to quarantine "
        "(keep curate.keep_target_copies copies) or warn"
    )
