"""Stage `dpo` (optional, off by default): direct preference optimisation after SFT.

The "SFT + DPO" recipe: start from the last complete SFT checkpoint (its LoRA adapter
merged into the base, or a full checkpoint as is), train a fresh LoRA adapter on curate's
preference pairs with TRL's DPOTrainer, and use the SFT model itself as the reference (TRL
disables the new adapter to get it, so no second copy of the model is held). Pairs whose
prompt is a val or test row's are dropped first: those rows pick and score the checkpoint.

Checkpoints go to models/dpo/checkpoint-N (written atomically, resumed after a crash when the
fingerprint matches, as in train), each with sft_checkpoint.json naming the SFT checkpoint
below it, so `models.loading.load_model_with_adapter` rebuilds base -> SFT -> DPO. eval scores
them as `dpo-checkpoint-N` next to the SFT checkpoints, and select may pick one.

With `dpo.enabled: false` the stage only writes empty outputs (DVC needs them) and loads
nothing: the modules that import torch, transformers or TRL (models/loading,
training/trainer, TRL itself) are imported inside the functions that run only when DPO does."""

from ..cli import run_stage
from ..io import write_json
from ..params import load_params
from ..paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_MANIFEST,
    DPO_DIR,
    DPO_DISABLED_MARKER,
    DPO_LOG_DIR,
    DPO_MANIFEST,
    DPO_STATS,
    PREFERENCES,
    RAW_DIR,
    TEST_SPLIT,
    VAL_SPLIT,
)
from ..training.dpo import HOW_TO_ENABLE, DpoFiles, train_dpo
from ..training.stacked import write_disabled

FILES = DpoFiles(
    base=BASE_MODEL_DIR,
    sft_manifest=CHECKPOINTS_MANIFEST,
    preferences=PREFERENCES,
    raw_dir=RAW_DIR,
    val_split=VAL_SPLIT,
    test_split=TEST_SPLIT,
    checkpoints=DPO_DIR,
    manifest=DPO_MANIFEST,
    log_dir=DPO_LOG_DIR,
    stats=DPO_STATS,
    disabled_marker=DPO_DISABLED_MARKER,
)


def main() -> None:
    params = load_params()
    if not params.dpo.enabled:
        write_disabled(FILES, HOW_TO_ENABLE)
        print(f"dpo: off (dpo.enabled is false), nothing trained; turn it on: {HOW_TO_ENABLE}")
        return
    stats = train_dpo(params, FILES)
    if stats is None:
        return
    write_json(DPO_STATS, stats)
    accuracy = stats["final"].get("rewards/accuracies")
    print(
        f"dpo: {stats['pairs']} pairs on {stats['sft_checkpoint']} "
        f"({stats['pairs_dropped_held_out']} dropped as val/test overlap), "
        f"{stats['global_step']} steps in {stats['train_seconds']:.0f}s, "
        f"loss {stats['train_loss']:.3f}"
        + (f", reward accuracy {accuracy:.2f}" if accuracy is not None else "")
    )


if __name__ == "__main__":
    run_stage("dpo", main)
