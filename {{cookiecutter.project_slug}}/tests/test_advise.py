"""The training advisor: the decision tree (data size, memory) on synthetic hardware and model
sizes, the parameter count against transformers, and the advice the smoke stage stores."""

from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.commands import advise
from {{ cookiecutter.module_name }}.io import read_json
from {{ cookiecutter.module_name }}.models.loading import QLORA_EXTRA
from {{ cookiecutter.module_name }}.params import TrainParams, parse_params
from {{ cookiecutter.module_name }}.paths import SMOKE_REPORT
from {{ cookiecutter.module_name }}.stages import smoke as smoke_stage
from {{ cookiecutter.module_name }}.training import advisor, memory, model_size
from {{ cookiecutter.module_name }}.training.advisor import DataFacts, Measured
from {{ cookiecutter.module_name }}.training.hardware import GIB, Hardware
from {{ cookiecutter.module_name }}.training.memory import MAX_BATCH
from {{ cookiecutter.module_name }}.training.model_size import ModelSize

# Llama-style shapes: (layers, hidden, intermediate, vocab, heads, kv heads, tied)
SHAPES = {
    "135m": (30, 576, 1536, 49152, 9, 3, True),  # SmolLM2-135M, the embedded model
    "1.7b": (24, 2048, 8192, 49152, 32, 32, True),  # SmolLM2-1.7B
    "7b": (32, 4096, 11008, 32000, 32, 32, False),  # Llama-2-7B
    "8b": (32, 4096, 14336, 128256, 32, 8, False),  # Llama-3.1-8B
    "70b": (80, 8192, 28672, 128256, 64, 8, False),  # Llama-3.1-70B
}


def llama_config(name: str) -> dict:
    layers, hidden, intermediate, vocab, heads, kv_heads, tied = SHAPES[name]
    return {
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": intermediate,
        "vocab_size": vocab,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "tie_word_embeddings": tied,
    }


def model(name: str) -> ModelSize:
    return model_size.model_size(llama_config(name), name=name)


def cpu(ram_gib: float = 24, cores: int = 2, bf16: bool = False) -> Hardware:
    return Hardware("cpu", "test CPU", int(ram_gib * GIB), cores=cores, bf16=bf16)


def gpu(vram_gib: float, devices: int = 1) -> Hardware:
    return Hardware("cuda", "test GPU", int(vram_gib * GIB), devices=devices, bf16=True)


def train(**overrides) -> TrainParams:
    return parse_params({"train": overrides}).train


DATA = DataFacts(rows=2000, mean_tokens=150.0, max_tokens=300)

# ---------------------------------------------------------------------- model size


@pytest.mark.parametrize(
    ("name", "billions"),
    [("135m", 0.1345), ("1.7b", 1.711), ("7b", 6.738), ("8b", 8.030), ("70b", 70.55)],
)
def test_llama_param_count_matches_published_sizes(name: str, billions: float) -> None:
    assert model_size.llama_param_count(llama_config(name)) / 1e9 == pytest.approx(
        billions, rel=2e-3
    )


def test_param_count_of_the_tiny_model_is_exact(tiny_model_dir: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    loaded = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    expected = sum(p.numel() for p in loaded.parameters())
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert model_size.exact_param_count(config) == expected
    assert model_size.llama_param_count(model_size.config_fields(config)) == expected
    size = model_size.read_model_size(tiny_model_dir)
    assert size.params == expected
    assert (size.layers, size.hidden, size.tied) == (2, 64, True)


def test_untied_head_and_biases_add_parameters() -> None:
    tied = llama_config("135m")
    untied = tied | {"tie_word_embeddings": False}
    biased = tied | {"attention_bias": True, "mlp_bias": True}
    base = model_size.llama_param_count(tied)
    assert model_size.llama_param_count(untied) - base == 49152 * 576
    # per layer: q, k, v, o biases (576 + 2 x 192 + 576) and gate, up, down (2 x 1536 + 576)
    assert model_size.llama_param_count(biased) - base == 30 * (1536 + 3648)


def test_lora_adapter_size() -> None:
    size = model("135m")
    # all-linear, r 8: 8 x (in + out) summed over q, k, v, o, gate, up, down, 30 layers
    per_layer = 8 * ((576 + 576) * 2 + (576 + 192) * 2 + (576 + 1536) * 3)
    assert memory.adapter_params(size, 8, "all-linear") == 30 * per_layer
    assert memory.adapter_params(size, 8, ["q_proj", "v_proj"]) == 30 * 8 * (1152 + 768)


# ---------------------------------------------------------------- the decision tree


@pytest.mark.parametrize(
    ("rows", "verdict"),
    [
        (50, "few-shot"),
        (99, "few-shot"),
        (100, "lora-watch-overfitting"),
        (999, "lora-watch-overfitting"),
        (1000, "lora-optimal"),
        (10000, "sft-dpo-or-full"),
        (None, "no-data"),
    ],
)
def test_data_verdict(rows: int | None, verdict: str) -> None:
    assert advisor.data_verdict(rows)[0] == verdict


@pytest.mark.parametrize(
    ("hw", "words"),
    [
        (cpu(), "API fine-tuning"),
        (gpu(6), "API fine-tuning"),
        (gpu(12), "QLoRA (+ Unsloth) on 7-8B"),
        (gpu(20), "QLoRA on 7-70B"),
        (gpu(24), "LoRA or QLoRA"),
        (gpu(80), "LoRA or full"),
    ],
)
def test_hardware_tier(hw: Hardware, words: str) -> None:
    assert words in advisor.hardware_tier(hw)


def test_small_model_on_a_cpu_gets_lora_on_the_cpu() -> None:
    advice = advisor.advise(model("135m"), cpu(24, cores=2), DATA, train(method="lora"))
    assert advice.recommended == "lora"
    assert "on the CPU" in advice.recommendation
    assert advice.configured_fits
    assert "qlora" in advice.alternatives  # fits too, but lora keeps the base exact
    assert advice.max_batch_size >= 1


def test_qlora_configured_on_a_cpu_fits_and_is_not_flagged() -> None:
    advice = advisor.advise(model("135m"), cpu(), DATA, train(method="qlora"))
    assert advice.configured_fits
    assert advice.recommended == "lora"
    assert not any("CUDA" in note for note in advice.notes)
    assert "needs a CUDA GPU" not in advise.render(advice)
    assert advice.max_batch_size >= 1


def estimate(advice: advisor.Advice, method: str) -> memory.MethodEstimate:
    return next(e for e in advice.estimates if e.method == method)


def test_a_2b_model_on_an_8gb_laptop_gets_qlora_on_the_cpu() -> None:
    """SmolLM2-1.7B: a float32 base alone is ~6.4 GiB, over the 7.2 GiB budget with the
    runtime; in 4 bits (embeddings kept in float32) the whole run needs ~4 GiB."""
    advice = advisor.advise(model("1.7b"), cpu(8), DATA, train(method="lora"))
    assert advice.recommended == "qlora"
    assert "QLoRA SFT" in advice.recommendation and "on the CPU" in advice.recommendation
    assert f"pip install -e '.[{QLORA_EXTRA}]'" in advice.recommendation
    lora, qlora = estimate(advice, "lora"), estimate(advice, "qlora")
    assert not lora.fits and lora.gib_at_batch_1 > advice.budget_gib
    assert qlora.fits and qlora.gib_at_batch_1 < 5
    assert not advice.configured_fits
    assert any("set train.method=qlora" in note for note in advice.notes)
    assert advice.max_batch_size >= 1  # qlora's batch
    assert "QLoRA (4-bit base)" in advice.hardware_tier


def test_the_4bit_base_is_what_shrinks() -> None:
    """QLoRA's saving is the quantised linear layers: 4 -> 0.55 bytes per parameter; the
    embeddings stay float32 and the adapters cost the same."""
    size, params = model("1.7b"), train()
    saved = memory.static_bytes("lora", size, params) - memory.static_bytes("qlora", size, params)
    assert saved == pytest.approx(size.linear_params * (4 - memory.NF4_BYTES_PER_PARAM), abs=1)
    assert size.linear_params > 0.9 * size.params - size.embedding_params


@pytest.mark.parametrize(("ram_gib", "expected"), [(2, "api"), (8, "qlora"), (16, "lora")])
def test_the_cpu_method_follows_the_ram(ram_gib: float, expected: str) -> None:
    advice = advisor.advise(model("1.7b"), cpu(ram_gib), DATA, train())
    assert advice.recommended == expected


def test_8b_on_a_12gb_gpu_gets_qlora() -> None:
    advice = advisor.advise(model("8b"), gpu(12), DATA, train(method="lora", max_length=512))
    assert advice.recommended == "qlora"
    assert not advice.configured_fits
    assert any("set train.method=qlora" in note for note in advice.notes)


def test_checkpointing_is_advised_when_only_it_fits() -> None:
    """8B QLoRA on 12 GB: the weights fit, 512-token activations only when recomputed."""
    advice = advisor.advise(model("8b"), gpu(12), DATA, train(method="qlora", max_length=512))
    qlora = next(e for e in advice.estimates if e.method == "qlora")
    assert qlora.fits and qlora.needs_checkpointing
    assert "gradient_checkpointing: true" in advice.recommendation
    assert "fits with gradient checkpointing" in advice.summary
    on = advisor.advise(
        model("8b"), gpu(12), DATA, train(method="qlora", gradient_checkpointing=True)
    )
    assert not next(e for e in on.estimates if e.method == "qlora").needs_checkpointing


def test_70b_on_80gb_gets_qlora() -> None:
    advice = advisor.advise(model("70b"), gpu(80), DATA, train(method="qlora"))
    assert advice.recommended == "qlora"
    assert advice.configured_fits
    lora = next(e for e in advice.estimates if e.method == "lora")
    assert not lora.fits


def test_7b_on_80gb_gets_lora_or_full() -> None:
    advice = advisor.advise(model("7b"), gpu(80), DATA, train(method="lora"))
    assert advice.recommended in ("lora", "full")
    assert advice.configured_fits
    assert "qlora" in advice.alternatives


def test_nothing_fits_means_api_fine_tuning() -> None:
    advice = advisor.advise(model("70b"), gpu(6), DATA, train(method="qlora"))
    assert advice.recommended == "api"
    assert "API fine-tuning" in advice.recommendation
    assert advice.max_batch_size == 0


def test_50_rows_advise_few_shot_prompting() -> None:
    advice = advisor.advise(model("135m"), cpu(), DataFacts(rows=50), train())
    assert advice.data_verdict == "few-shot"
    assert advice.summary.startswith("few-shot prompting instead")
    assert "few-shot" in advise.render(advice)


def test_many_epochs_on_little_data_warn_of_overfitting() -> None:
    advice = advisor.advise(model("135m"), cpu(), DataFacts(rows=500), train(num_epochs=10))
    assert any("overfitting" in note for note in advice.notes)


# --------------------------------------------------------------------- batch size


def test_max_batch_size_is_monotone_in_memory_and_capped() -> None:
    per_sequence, fixed = GIB // 4, 2 * GIB
    batches = [memory.max_batch_size(gib * GIB, fixed, per_sequence) for gib in range(1, 64)]
    assert batches == sorted(batches)
    assert batches[0] == 0  # 1 GiB holds not even the weights
    assert memory.max_batch_size(3 * GIB, fixed, per_sequence) == 4
    assert max(batches) == MAX_BATCH


def test_batch_estimate_grows_with_vram_and_shrinks_with_length() -> None:
    size = model("8b")
    params = train(method="qlora", gradient_checkpointing=True)
    batches = [advisor.advise(size, gpu(v), DATA, params).max_batch_size for v in (12, 24, 48, 80)]
    assert batches == sorted(batches) and batches[0] < batches[-1]
    short = advisor.advise(size, gpu(48), DATA, train(method="qlora", max_length=256))
    long = advisor.advise(size, gpu(48), DATA, train(method="qlora", max_length=2048))
    assert short.max_batch_size > long.max_batch_size


def test_gradient_checkpointing_shrinks_activations() -> None:
    size = model("8b")
    plain = memory.activation_bytes_per_token(size, 2, checkpointing=False)
    checkpointed = memory.activation_bytes_per_token(size, 2, checkpointing=True)
    # the documented formula: layers x 34 x hidden (bf16) + vocab x 8; checkpointed, each
    # layer keeps only its input (2 x hidden) and one layer is recomputed at a time
    assert plain == 32 * 34 * 4096 + 128256 * 8
    assert checkpointed == 32 * 2 * 4096 + 34 * 4096 + 128256 * 8
    assert checkpointed < plain / 3


def test_a_batch_above_the_estimate_suggests_grad_accum() -> None:
    advice = advisor.advise(model("8b"), gpu(24), DATA, train(method="qlora", batch_size=64))
    assert advice.max_batch_size < 64
    note = next(n for n in advice.notes if "train.batch_size=64" in n)
    assert "grad_accum" in note and "gradient_checkpointing" in note


# ----------------------------------------------------------------------------- time


def test_measured_time_is_used_and_labelled() -> None:
    measured = Measured(seconds_per_step=3.0, steps=200)
    advice = advisor.advise(model("135m"), cpu(), DATA, train(), measured)
    assert advice.time_source == "measured"
    assert advice.minutes == pytest.approx(10.0)
    assert "measured" in advise.render(advice)


def test_estimated_time_from_flops() -> None:
    hw = Hardware("cpu", "test CPU", 24 * GIB, matmul_flops=1e11)
    data = DataFacts(rows=1000, mean_tokens=200.0)
    lora = advisor.advise(model("135m"), hw, data, train(method="lora", num_epochs=2))
    full = advisor.advise(model("135m"), hw, data, train(method="full", num_epochs=2))
    expected = 4 * lora.params * 1000 * 2 * 200 / (1e11 * advisor.ACHIEVABLE_FRACTION) / 60
    assert lora.time_source == "estimated"
    assert lora.minutes == pytest.approx(expected, abs=0.1)
    assert full.minutes == pytest.approx(expected * 6 / 4, abs=0.1)


def test_no_rate_no_rows_no_time() -> None:
    advice = advisor.advise(model("135m"), cpu(), DataFacts(rows=None), train())
    assert advice.minutes is None and advice.time_source == "unknown"
    assert "dvc repro split" in advice.data_advice


def test_stale_smoke_report_is_ignored(tmp_path: Path) -> None:
    report = tmp_path / "smoke.json"
    report.write_text('{"seconds_per_step": 2.0, "full_run_steps": 50}')
    params = train(batch_size=4, grad_accum=1, num_epochs=2)
    assert advisor.read_measured(report, 100, params) == Measured(2.0, 50)
    assert advisor.read_measured(report, 101, params) is None  # 52 steps now
    assert advisor.read_measured(tmp_path / "missing.json", 100, params) is None


def test_render_names_every_method_and_the_summary_is_one_line() -> None:
    advice = advisor.advise(model("8b"), gpu(24), DATA, train(method="qlora"))
    text = advise.render(advice)
    for method in ("lora", "qlora", "full"):
        assert f"  {method} " in text
    assert "\n" not in advice.summary
    assert "train.method=qlora fits" in advice.summary


# ---------------------------------------------------------------------------- smoke


def test_smoke_report_contains_the_advice(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """smoke.main stores the advice, timed by the smoke's measured seconds per step (the
    training itself is replaced: test_pipeline runs it for real)."""
    measured = {"seconds_per_step": 0.5, "full_run_steps": 6, "passed": True, "problems": []}
    fake = measured | {"rows": 4, "loss_before": 2.0, "loss_after": 1.0}
    fake |= {"full_run_minutes_estimate": 0.1}
    monkeypatch.setattr(smoke_stage, "run_smoke", lambda params, base, rows, page: dict(fake))
    smoke_stage.main()
    advice = read_json(SMOKE_REPORT)["advice"]
    assert advice["time_source"] == "measured"
    assert advice["minutes"] == pytest.approx(0.5 * 6 / 60, abs=0.05)
    assert advice["rows"] == 24
    assert advice["recommended"] in ("lora", "qlora")
    assert advice["configured_method"] == "lora"
    assert {e["method"] for e in advice["estimates"]} == {"lora", "qlora", "full"}
    assert "smoke: advice: " in capsys.readouterr().out
