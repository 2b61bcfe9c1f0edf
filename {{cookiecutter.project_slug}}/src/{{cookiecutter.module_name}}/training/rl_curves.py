"""The rl stage's figure: what GRPO logged by step (the rewards, the KL to the SFT model, the
completion length), read from the dvclive curves under reports/rl that `dvc plots` reads too.
select puts it in the report beside the val metrics of every checkpoint."""

from pathlib import Path

from ..tracking.run_data import read_curves
from .rewards import KL_KEY, LENGTH_KEY, REWARD_KEY

Curves = dict[str, list[tuple[int, float]]]


def reward_curves(curves: Curves) -> Curves:
    """The weighted reward sum and each reward's mean (rewards/<name>/mean), by short name."""
    picked = {"reward (weighted sum)": curves[REWARD_KEY]} if REWARD_KEY in curves else {}
    for name, curve in curves.items():
        parts = name.split("/")
        if len(parts) == 3 and parts[0] == "rewards" and parts[2] == "mean":
            picked[parts[1]] = curve
    return picked


def plot_rl_curves(log_dir: Path, sft_checkpoint: str, path: Path) -> Path:
    """Three panels by GRPO step: rewards, KL, mean completion length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = read_curves(log_dir)
    fig, (rewards, kl, length) = plt.subplots(1, 3, figsize=(10, 3.2), dpi=110)
    for label, curve in reward_curves(curves).items():
        rewards.plot(*zip(*curve, strict=True), label=label, linewidth=1)
    rewards.legend(fontsize=7, loc="best")
    panels = (
        (rewards, None, f"Rewards (GRPO on {sft_checkpoint})"),
        (kl, KL_KEY, "KL to the SFT model"),
        (length, LENGTH_KEY, "Completion length (tokens)"),
    )
    for axes, key, title in panels:
        if key and curves.get(key):
            axes.plot(*zip(*curves[key], strict=True), linewidth=1)
        axes.set(xlabel="GRPO step", title=title)
        axes.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
