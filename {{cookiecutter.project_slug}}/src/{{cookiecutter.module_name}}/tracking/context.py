"""Where and under what name a run is logged, from DVC's environment variables."""

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Context:
    """Where and under what name a run is logged, from DVC's environment variables: the
    project root (local stores live there; W&B writes <root>/wandb/), the experiment's name
    and the commit it started from."""

    root: Path
    run_name: str | None
    baseline_rev: str | None


def project_name() -> str:
    """The default MLflow experiment and W&B project: the package's name, dashed."""
    return __package__.partition(".")[0].replace("_", "-")


def context(environ: Mapping[str, str] = os.environ) -> Context:
    return Context(
        root=Path(environ.get("DVC_ROOT") or ".").resolve(),
        run_name=environ.get("DVC_EXP_NAME") or None,
        baseline_rev=environ.get("DVC_EXP_BASELINE_REV") or None,
    )
