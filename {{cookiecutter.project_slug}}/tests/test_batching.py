"""Padding-free and packed batches train on exactly what padded batches train on: the val
loss of the same model over the same rows is the same whichever way the rows are batched, so
no example attends to another."""

from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.io import read_jsonl
from {{ cookiecutter.module_name }}.params import load_params
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, PARAMS, TRAIN_SPLIT
from {{ cookiecutter.module_name }}.training.trainer import build_trainer


def val_loss(tmp_path: Path, **train_overrides) -> float:
    raw = yaml.safe_load(PARAMS.read_text())
    # long enough that no row is truncated: curate quarantines longer rows in a real run
    raw["train"] |= {"max_length": 1024, **train_overrides}
    PARAMS.write_text(yaml.safe_dump(raw))
    params = load_params()
    rows = read_jsonl(TRAIN_SPLIT)[:8]
    trainer = build_trainer(
        params, BASE_MODEL_DIR, rows, rows, tmp_path / "run", eval_strategy="no", disable_tqdm=True
    )
    return trainer.evaluate()["eval_loss"]


@pytest.mark.parametrize("mode", [{"padding_free": True}, {"packing": True}])
def test_unpadded_batches_give_the_padded_loss(project: Path, tmp_path: Path, mode: dict) -> None:
    padded = val_loss(tmp_path, padding_free=False, packing=False)
    unpadded = val_loss(tmp_path, **{"padding_free": False, "packing": False, **mode})
    assert unpadded == pytest.approx(padded, rel=1e-4)
