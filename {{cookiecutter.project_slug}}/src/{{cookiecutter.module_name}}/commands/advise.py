"""`make advise`: which method, batch size and run time suit this model, data and machine.

Prints the advice of training/advice.py for models/base, data/splits/train.jsonl and this
machine; the smoke stage stores the same advice in reports/smoke.json.
"""

from ..cli import run_stage
from ..io import read_jsonl
from ..params import load_params
from ..paths import BASE_MODEL_DIR, SMOKE_REPORT, TRAIN_SPLIT
from ..training.advisor import (
    Advice,
    advice_head,
    collect,
    configured_fit,
    format_minutes,
    read_measured,
    read_rl_measured,
)
from ..training.memory import MAX_BATCH, MEMORY_FRACTION


def render(advice: Advice) -> str:
    """A short block for people."""
    lines = [
        f"Training advice for {advice.model} ({advice.params / 1e6:,.1f}M parameters)",
        f"  hardware  {advice.hardware}",
        f"  by memory {advice.hardware_tier}",
        f"  data      {advice.data_advice}",
        f"  memory    per device, {advice.budget_gib:.1f} GiB budget "
        f"({MEMORY_FRACTION:.0%} of {advice.memory_gib:.1f} GiB), max_length {advice.max_length}:",
        f"            {'method':<8}{'batch 1':>10}{'+/sequence':>12}{'max batch':>11}",
    ]
    for e in advice.estimates:
        batch = f"{e.max_batch}{' (ckpt)' if e.needs_checkpointing else ''}" if e.fits else "no fit"
        lines.append(
            f"            {e.method:<8}{e.gib_at_batch_1:>6.2f} GiB{e.gib_per_sequence:>8.3f} GiB"
            f"{batch:>11}"
        )
    if any(e.needs_checkpointing for e in advice.estimates):
        lines.append("            (ckpt): fits only with train.gradient_checkpointing: true")
    fits = configured_fit(advice)
    also = f" (also fits: {', '.join(advice.alternatives)})" if advice.alternatives else ""
    lines += [
        f"  advice    {advice_head(advice)}{also}",
        f"            configured train.method={advice.configured_method}: {fits}",
        f"  batch     train.batch_size={advice.batch_size}; largest that fits: "
        f"{advice.max_batch_size} (capped at {MAX_BATCH})",
    ]
    if advice.minutes is None:
        lines.append(f"  time      unknown ({advice.time_basis})")
    else:
        lines.append(
            f"  time      ~{format_minutes(advice.minutes)} for the full run, "
            f"{advice.time_source} ({advice.time_basis})"
        )
    lines += [f"  note      {note}" for note in advice.notes]
    return "\n".join(lines)


def main() -> None:
    params = load_params()
    rows = read_jsonl(TRAIN_SPLIT) if TRAIN_SPLIT.exists() else None
    n_rows = len(rows) if rows is not None else None
    measured = read_measured(SMOKE_REPORT, n_rows, params.train)
    rl_seconds = read_rl_measured(SMOKE_REPORT, params)
    print(render(collect(params, rows, BASE_MODEL_DIR, measured, rl_seconds_per_step=rl_seconds)))


if __name__ == "__main__":
    run_stage("advise", main)
