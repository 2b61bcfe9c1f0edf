"""QLoRA on the CPU with the tiny model: a 4-bit nf4 base (bitsandbytes' CPU backend) with
float32 LoRA adapters trained on top, saved and reloaded; the smoke stage passes with it.
Skipped where bitsandbytes is not installed (it is the optional extra `QLORA_EXTRA`)."""

import math
from pathlib import Path

import pytest
import torch
import yaml

from {{ cookiecutter.module_name }}.io import read_jsonl
from {{ cookiecutter.module_name }}.models import loading as modeling
from {{ cookiecutter.module_name }}.models.loading import (
    BITSANDBYTES_MIN,
    QLORA_EXTRA,
    load_model_with_adapter,
    quantization_config,
)
from {{ cookiecutter.module_name }}.params import Params, parse_params
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR
from {{ cookiecutter.module_name }}.training import smoke, trainer

bnb = pytest.importorskip(
    "bitsandbytes",
    minversion=BITSANDBYTES_MIN,
    reason=f"train.method=qlora needs bitsandbytes>={BITSANDBYTES_MIN}: "
    f"pip install -e '.[{QLORA_EXTRA}]'",
)

TINY_LINEAR_LAYERS = 2 * 7  # layers x (q, k, v, o, gate, up, down)


def qlora_params(**train: object) -> Params:
    raw = yaml.safe_load(Path("params.yaml").read_text())
    raw["train"] |= {"method": "qlora", **train}
    return parse_params(raw)


def train_rows() -> list[dict]:
    return read_jsonl(Path("data/splits/train.jsonl"))


def build(params: Params, out: Path, **overrides: object):
    settings = {"save_strategy": "no", "eval_on_start": False, "disable_tqdm": True}
    return trainer.build_trainer(
        params, BASE_MODEL_DIR, train_rows(), None, out, **(settings | overrides)
    )


def four_bit_layers(model) -> list:
    return [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]


@torch.inference_mode()
def logits(model, ids: torch.Tensor) -> torch.Tensor:
    return model.eval()(input_ids=ids.to(model.device)).logits.cpu()


def test_qlora_is_supported_on_this_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(trainer, "has_gpu", lambda: False)
    assert modeling.bitsandbytes_problem("cpu") is None
    qlora = parse_params({"train": {"method": "qlora"}}).train
    assert trainer.check_method_supported(qlora) is None


def test_qlora_trains_on_the_cpu_and_its_adapter_reloads(project: Path, tmp_path: Path) -> None:
    sft_trainer = build(qlora_params(), tmp_path / "run", max_steps=6, logging_steps=1)
    layers = four_bit_layers(sft_trainer.model)
    assert len(layers) == TINY_LINEAR_LAYERS
    for layer in layers:
        assert layer.weight.quant_type == "nf4" and layer.weight.compress_statistics
        assert layer.compute_dtype == torch.float32  # the tiny params set bf16: false
    adapters = [p for p in sft_trainer.model.parameters() if p.requires_grad]
    assert adapters and all(p.dtype == torch.float32 for p in adapters)  # not TRL's bf16

    sft_trainer.train()
    losses = [entry["loss"] for entry in sft_trainer.state.log_history if "loss" in entry]
    assert len(losses) == 6 and all(math.isfinite(loss) for loss in losses)
    assert losses[-1] < losses[0]

    saved = tmp_path / "adapter"
    sft_trainer.save_model(str(saved))
    ids = torch.tensor([sft_trainer.processing_class("billing refund password")["input_ids"]])
    trained = logits(sft_trainer.model, ids)
    reloaded = load_model_with_adapter(
        saved, BASE_MODEL_DIR, quantization=quantization_config(False)
    )
    assert len(four_bit_layers(reloaded)) == TINY_LINEAR_LAYERS
    assert torch.allclose(logits(reloaded, ids), trained, atol=1e-5)
    # eval merges the adapter into the float base: the 4-bit rounding of the base shows
    merged = logits(load_model_with_adapter(saved, BASE_MODEL_DIR), ids)
    assert not torch.allclose(merged, trained, atol=1e-3)
    assert (merged - trained).abs().max() < 0.1 * trained.abs().max()


def test_an_eval_before_training_keeps_the_gradient_through_4bit_layers(
    project: Path, tmp_path: Path
) -> None:
    """bitsandbytes' fused CPU inference kernel (on AVX512-BF16 CPUs) has no backward: an eval
    (the train stage's eval_on_start, smoke's evaluate) must not switch the 4-bit layers to it
    for the training that follows. Elsewhere the kernel is never used and this holds anyway."""
    rows = train_rows()
    sft_trainer = trainer.build_trainer(
        qlora_params(), BASE_MODEL_DIR, rows, rows[:4], tmp_path / "run", eval_on_start=False
    )
    model = sft_trainer.model
    batch = next(iter(sft_trainer.get_train_dataloader()))
    inputs = {key: batch[key] for key in ("input_ids", "attention_mask", "labels")}
    first = next(p for n, p in model.named_parameters() if "layers.0.self_attn.q_proj.lora_B" in n)

    def first_layer_gradient() -> torch.Tensor:
        model.train()
        model.zero_grad()
        model(**inputs).loss.backward()
        return first.grad.clone()

    fresh = first_layer_gradient()
    sft_trainer.evaluate()
    assert fresh.norm() > 0
    assert torch.allclose(first_layer_gradient(), fresh)
    assert not any(
        getattr(layer.weight.quant_state, "packing_format_for_cpu", False)
        for layer in four_bit_layers(model)
    )


@pytest.mark.parametrize(
    ("bf16", "fast_bf16", "expected"),
    [
        (True, False, torch.bfloat16),
        (False, True, torch.float32),
        ("auto", True, torch.bfloat16),
        ("auto", False, torch.float32),  # an AVX2-only CPU: never emulated bf16
    ],
)
def test_the_compute_dtype_follows_the_bf16_setting(
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    bf16: object,
    fast_bf16: bool,
    expected: torch.dtype,
) -> None:
    monkeypatch.setattr(modeling, "cpu_has_fast_bf16", lambda: fast_bf16)
    sft_trainer = build(qlora_params(bf16=bf16), tmp_path / "run")
    assert sft_trainer.args.bf16 == (expected == torch.bfloat16)
    assert {layer.compute_dtype for layer in four_bit_layers(sft_trainer.model)} == {expected}


@pytest.mark.parametrize("bf16", [False, True])
def test_smoke_passes_with_qlora(project: Path, bf16: bool) -> None:
    """The smoke reload check loads the saved adapter onto the same 4-bit base: it matches
    the trained model (nf4 quantisation is deterministic), which the float base would not."""
    if bf16 and not modeling.cpu_has_fast_bf16() and not torch.cuda.is_available():
        pytest.skip("emulated bf16 on this CPU: too slow for a test")
    report = smoke.run_smoke(qlora_params(bf16=bf16), BASE_MODEL_DIR, train_rows())
    assert report["reload_matches"], report
    assert report["passed"], report["problems"]
