"""One verdict where the diagnosis pulls in opposite directions.

Each finding of selection/diagnose.py comes with its own fix, and some fixes contradict each
other: underfitting says "increase the rank and train longer", forgetting "use a smaller rank"
and overfitting "train fewer epochs". Both firing is itself the evidence:

- underfitting + forgetting: the fine-tune changed the model (it lost general ability)
  without teaching it the task. More or less training moves one failure by worsening the
  other, so fine-tuning this base on these rows does not help: the few-shot baseline,
  retrieval or a larger base are the ways forward.
- underfitting + overfitting: the model memorises the train rows but gains nothing on val:
  the rows do not teach what val asks (too few, too unlike val). More varied data is the
  lever; the run to try is the shorter, lower-rank one the overfitting rule proposes, never
  more epochs.

Pure: findings and metrics in, a Verdict (or None where the findings agree) out."""

from dataclasses import dataclass

from ..params import Params
from .diagnose import Finding

# the embedded base's next size up, same family and chat template (any hub id works)
LARGER_BASE = {"embedded:smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-360M-Instruct"}


@dataclass(frozen=True)
class Verdict:
    summary: str  # what the findings together say, in one sentence
    evidence: list[str]  # each finding's evidence, by its mode, and the scores behind it
    advice: str  # what to do instead of the findings' contradicting fixes
    try_params: dict[str, object]  # the one `dvc exp run -S key=value` to try
    replaces: tuple[str, ...]  # the modes whose fixes this verdict overrides

    @property
    def command(self) -> str:
        sets = " ".join(f"-S {key}={value}" for key, value in self.try_params.items())
        return f"dvc exp run {sets}" if sets else ""

    def as_dict(self) -> dict[str, object]:
        return {
            "summary": self.summary,
            "evidence": self.evidence,
            "advice": self.advice,
            "try_params": self.try_params,
            "command": self.command,
            "replaces": list(self.replaces),
        }


def scores_text(metric: str, selected: dict, base: dict, fewshot: dict | None) -> str:
    """The test scores the verdict rests on, e.g. `test task_score: fine-tune 0.26, base 0.27`."""
    parts = [f"fine-tune {selected[metric]:.3f}", f"base {base[metric]:.3f}"]
    if fewshot is not None:
        parts.append(f"few-shot {fewshot[metric]:.3f}")
    return f"test {metric}: " + ", ".join(parts)


def next_try(metric: str, selected: dict, fewshot: dict | None, params: Params) -> dict:
    """The one experiment for a fine-tune that does not help: more examples in the prompt
    where the few-shot baseline already does as well (or measure it where it is off), else
    the next size of the base where one is known."""
    k = params.eval.fewshot_k
    if k == 0:
        return {"eval.fewshot_k": 3}
    if fewshot is not None and fewshot[metric] >= selected[metric]:
        return {"eval.fewshot_k": 2 * k}
    larger = LARGER_BASE.get(params.base.model)
    return {"base.model": larger} if larger else {}


def verdict(
    findings: list[Finding],
    selected: dict,
    base: dict,
    fewshot: dict | None,
    metric: str,
    params: Params,
) -> Verdict | None:
    """The verdict when underfitting fires with forgetting or overfitting (None otherwise).
    `selected`, `base` and `fewshot` are test metrics; `metric` the one checkpoints are ranked
    by (guardrails.ranking_metric)."""
    by_mode = {finding.mode: finding for finding in findings}
    if "underfitting" not in by_mode:
        return None
    scores = scores_text(metric, selected, base, fewshot)
    if "forgetting" in by_mode:
        modes = [m for m in ("underfitting", "forgetting", "overfitting") if m in by_mode]
        try_params = next_try(metric, selected, fewshot, params)
        instead = (
            "prompt the base with solved examples (the few-shot baseline does as well; the "
            "run below tries more of them) or retrieve similar solved rows into the prompt"
            if "eval.fewshot_k" in try_params
            else "retrieve similar solved rows into the prompt, or use a larger base"
        )
        return Verdict(
            summary=(
                "the fine-tune changes the model without teaching it the task: it is no better "
                "than the baselines and has lost general ability, so fine-tuning this base on "
                "these rows does not help"
            ),
            evidence=[f"{mode}: {by_mode[mode].evidence}" for mode in modes] + [scores],
            advice=(
                "do not follow the rank advice of either finding (underfitting's larger rank "
                f"makes the forgetting worse, forgetting's smaller one the underfitting): {instead}"
                "; more rows that show the content, not just the style, of the answers may "
                "change this"
            ),
            try_params=try_params,
            replaces=tuple(modes),
        )
    if "overfitting" in by_mode:
        return Verdict(
            summary=(
                "the model memorises the train rows but gains nothing on val: the rows do not "
                "teach what val asks"
            ),
            evidence=[
                f"overfitting: {by_mode['overfitting'].evidence}",
                f"underfitting: {by_mode['underfitting'].evidence}",
                scores,
            ],
            advice=(
                "add more, more varied rows (like the val/test prompts); do not train longer "
                "or at a larger rank (underfitting's fix feeds the memorising). The run to try "
                "stops near the val peak"
            ),
            try_params=dict(by_mode["overfitting"].try_params),
            replaces=("underfitting", "overfitting"),
        )
    return None


def verdict_lines(found: Verdict) -> list[str]:
    """The verdict as select prints it: one summary, the evidence, one command."""
    lines = [f"verdict: {found.summary}"]
    lines += [f"  evidence: {item}" for item in found.evidence]
    lines.append(f"  advice: {found.advice}")
    if found.command:
        lines.append(f"  try: {found.command}")
    return lines
