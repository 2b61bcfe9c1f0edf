"""Eval's val loss (evaluation/val_loss.py) is the loss the trainer takes: the same value as a
trainer's own val pass over the same rows, whatever the batching, and cached like the outputs."""

from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.data.masking import ChatEncoder, Encoded
from {{ cookiecutter.module_name }}.evaluation.cache import GenerationCache
from {{ cookiecutter.module_name }}.evaluation.model_run import ModelRun
from {{ cookiecutter.module_name }}.evaluation.reports import with_val_losses
from {{ cookiecutter.module_name }}.evaluation.val_loss import cut, token_batches, val_loss
from {{ cookiecutter.module_name }}.io import read_jsonl
from {{ cookiecutter.module_name }}.models.loading import load_model_with_adapter, load_tokenizer
from {{ cookiecutter.module_name }}.params import load_params
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, TRAIN_SPLIT
from {{ cookiecutter.module_name }}.training.trainer import build_trainer


def encoded_rows(rows: list[dict], max_length: int) -> list[Encoded]:
    params = load_params()
    encoder = ChatEncoder(load_tokenizer(BASE_MODEL_DIR), params.train.assistant_turns)
    return cut(encoder([r["prompt"] + r["completion"] for r in rows]), max_length)


def test_token_batches_hold_at_most_max_tokens_longest_first() -> None:
    assert token_batches([3, 10, 4, 9], max_tokens=20) == [[1, 3], [2, 0]]
    assert token_batches([30, 5], max_tokens=20) == [[0], [1]]  # a longer row goes alone
    assert token_batches([], max_tokens=20) == []


def test_cut_keeps_the_start_and_the_spans_inside() -> None:
    (row,) = cut([Encoded(list(range(10)), ((2, 4), (6, 10)))], 8)
    assert row.ids == list(range(8)) and row.spans == ((2, 4), (6, 8))


def test_val_loss_is_the_trainers_eval_loss(project: Path, tmp_path: Path) -> None:
    params = load_params()
    rows = read_jsonl(TRAIN_SPLIT)[:8]
    trainer = build_trainer(params, BASE_MODEL_DIR, rows, rows, tmp_path / "run", disable_tqdm=True)
    expected = trainer.evaluate()["eval_loss"]  # one batch of 8 (eval batch >= 16)
    model = load_model_with_adapter(
        None, BASE_MODEL_DIR
    ).eval()  # LoRA starts at B = 0: the base's loss
    encoded = encoded_rows(rows, params.train.max_length)
    pad = load_tokenizer(BASE_MODEL_DIR).pad_token_id
    measured = val_loss(model, encoded, pad)
    assert measured == pytest.approx(expected, abs=2e-4)
    assert val_loss(model, encoded, pad, max_tokens=1) == pytest.approx(measured, abs=2e-4)
    assert val_loss(model, [Encoded(row.ids, ()) for row in encoded], pad) is None


def test_a_models_val_loss_is_cached(project: Path, tmp_path: Path) -> None:
    rows = tuple(encoded_rows(read_jsonl(TRAIN_SPLIT)[:4], 256))
    built: list[object] = []

    def generator_for(checkpoint):
        from {{ cookiecutter.module_name }}.evaluation.generation import HFGenerator

        built.append(checkpoint)
        return HFGenerator(
            load_model_with_adapter(checkpoint, BASE_MODEL_DIR).eval(),
            load_tokenizer(BASE_MODEL_DIR),
            8,
        )

    cache = GenerationCache(tmp_path / "cache")
    first = ModelRun(None, BASE_MODEL_DIR, generator_for, cache, {"bf16": False}).val_loss(rows)
    second = ModelRun(None, BASE_MODEL_DIR, generator_for, cache, {"bf16": False}).val_loss(rows)
    assert isinstance(first, float) and second == first
    assert len(built) == 1  # the second run loaded no model


def test_eval_val_losses_join_the_train_log_as_the_trainer_logged_them() -> None:
    history = [{"step": 2, "loss": 3.0}, {"step": 4, "loss": 2.0}]
    reports = [
        {"role": "base", "step": 0, "val_loss": 3.5},
        {"role": "fewshot", "step": 0, "val_loss": None},
        {"role": "checkpoint", "step": 4, "val_loss": 2.5},
        {"role": "checkpoint", "step": 8, "stage": "dpo", "val_loss": 1.0},
    ]
    assert with_val_losses(history, reports) == [
        {"step": 0, "eval_loss": 3.5},
        {"step": 2, "loss": 3.0},
        {"step": 4, "loss": 2.0},
        {"step": 4, "eval_loss": 2.5},
    ]
