"""Finding the trainer's checkpoints: only complete ones, ordered by step."""

import re
from pathlib import Path

CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")


def checkpoint_step(name: str) -> int:
    """'checkpoint-48' -> 48; anything else (the base model) is step 0."""
    match = CHECKPOINT_RE.match(Path(name).name)
    return int(match.group(1)) if match else 0


def complete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints whose save finished (trainer_state.json is written last), oldest first."""
    found = [
        path
        for path in output_dir.glob("checkpoint-*")
        if CHECKPOINT_RE.match(path.name) and (path / "trainer_state.json").exists()
    ]
    return sorted(found, key=lambda path: checkpoint_step(path.name))
