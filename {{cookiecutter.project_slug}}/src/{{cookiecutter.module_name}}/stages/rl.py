"""Stage `rl` (optional, off by default): GRPO after SFT, rewarded by the task's own scorer.

Reinforcement learning with verifiable rewards: start from the SFT checkpoint select's rule
picks on eval's val reports (the best ranking metric among those passing the guardrails), put
a fresh LoRA adapter on it, and train it with TRL's GRPOTrainer on the train split's task
prompts. Each prompt is answered rl.num_generations times; each completion is scored by the
task scorer and the format check eval uses (training/rewards.py), weighted by
rl.reward_weights, plus rl.reward, a function of your own; GRPO pushes the model towards the
completions that score above their group's mean. With rl.beta > 0 a KL term holds it near the
SFT model (TRL disables the new adapter to get it, so no second copy is held).

Checkpoints go to models/rl/checkpoint-N (written atomically, resumed after a crash when the
fingerprint matches, as in train), each with sft_checkpoint.json naming the SFT checkpoint
below it. The eval_rl stage scores them as `rl-checkpoint-N` on the same val rows and suites,
and select chooses among SFT, DPO and RL checkpoints. reports/rl/ holds the reward, KL and
completion length by step (dvclive) and stats.json.

With `rl.enabled: false` the stage only writes empty outputs (DVC needs them) and loads
nothing: torch, transformers and TRL are imported inside the functions that run only when RL
does."""

from ..cli import run_stage
from ..io import write_json
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    CHECKPOINTS_MANIFEST,
    EVAL_DIR,
    RL_DIR,
    RL_DISABLED_MARKER,
    RL_FIGURE,
    RL_LOG_DIR,
    RL_MANIFEST,
    RL_STATS,
    TRAIN_SPLIT,
)
from ..training.grpo import HOW_TO_ENABLE, RlFiles, train_rl
from ..training.rewards import KL_KEY, LENGTH_KEY, REWARD_KEY
from ..training.rl_curves import plot_rl_curves
from ..training.stacked import write_disabled

FILES = RlFiles(
    base=BASE_MODEL_DIR,
    sft_checkpoints=CHECKPOINTS_DIR,
    sft_manifest=CHECKPOINTS_MANIFEST,
    eval_dir=EVAL_DIR,
    train_split=TRAIN_SPLIT,
    checkpoints=RL_DIR,
    manifest=RL_MANIFEST,
    log_dir=RL_LOG_DIR,
    stats=RL_STATS,
    disabled_marker=RL_DISABLED_MARKER,
)


def main() -> None:
    params = load_params()
    if not params.rl.enabled:
        write_disabled(FILES, HOW_TO_ENABLE)
        print(f"rl: off (rl.enabled is false), nothing trained; turn it on: {HOW_TO_ENABLE}")
        return
    stats = train_rl(params, FILES)
    if stats is None:
        return
    write_json(RL_STATS, stats)
    plot_rl_curves(RL_LOG_DIR, stats["sft_checkpoint"], RL_FIGURE)
    first, final = stats["first"], stats["final"]
    print(
        f"rl: GRPO on {stats['sft_checkpoint']}, {stats['prompts']} prompts, "
        f"{stats['global_step']} steps in {stats['train_seconds']:.0f}s; reward "
        f"{first.get(REWARD_KEY, float('nan')):.3f} -> {final.get(REWARD_KEY, float('nan')):.3f}, "
        f"KL {final.get(KL_KEY, 0.0):.4f}, completion length {final.get(LENGTH_KEY, 0):.0f}"
    )


if __name__ == "__main__":
    run_stage("rl", main)
