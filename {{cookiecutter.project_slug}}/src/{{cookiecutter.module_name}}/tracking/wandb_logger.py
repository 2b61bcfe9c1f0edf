"""A pipeline run logged to Weights & Biases: config, curves by step, the summary."""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..params import WandbParams
from .context import Context, project_name
from .run_data import RunData


def log_wandb(settings: WandbParams, data: RunData, where: Context) -> dict[str, Any]:
    """One W&B run: params as its config, the train curves by global step (dpo's against
    dpo/step), the headline metrics as its summary."""
    import wandb

    run = wandb.init(
        project=settings.project or project_name(),
        entity=settings.entity,
        mode=settings.mode,
        dir=str(where.root),
        name=where.run_name,
        notes=f"dvc baseline {where.baseline_rev}" if where.baseline_rev else None,
        config=data.params,
        settings=wandb.Settings(console="off", save_code=False, disable_git=True, quiet=True),
    )
    try:
        train = {k: v for k, v in data.curves.items() if not k.startswith("dpo/")}
        for step, values in by_step(train):
            run.log(values, step=step)
        dpo = {k: v for k, v in data.curves.items() if k.startswith("dpo/")}
        if dpo:
            run.define_metric("dpo/step")
            run.define_metric("dpo/*", step_metric="dpo/step")
            for step, values in by_step(dpo):
                run.log({"dpo/step": step, **values})
        run.summary.update(data.metrics)
        run_dir = Path(run.dir).parent
        record = {"project": run.project, "mode": settings.mode, "run_id": run.id}
        record["run_dir"] = run_dir.relative_to(where.root).as_posix()
    finally:
        run.finish()
    return record


def by_step(curves: Mapping[str, list[tuple[int, float]]]) -> list[tuple[int, dict[str, float]]]:
    """Curves -> [(step, {name: value})] in step order (W&B's steps only go forward)."""
    steps: dict[int, dict[str, float]] = {}
    for name, points in curves.items():
        for step, value in points:
            steps.setdefault(step, {})[name] = value
    return sorted(steps.items())
