"""The generator that scores a model (eval.backend: transformers or vLLM), checked before any
work, and the eval settings that change its outputs."""

import importlib.util
from collections.abc import Callable
from pathlib import Path

from ..errors import StageError
from ..models.loading import has_gpu, load_for_inference, use_bf16
from ..params import EvalParams
from ..training.checkpoints import checkpoint_step
from .generation import (
    Generator,
    HFGenerator,
    VLLMGenerator,
    base_generation_config,
    stop_token_ids,
)

GeneratorFor = Callable[[Path | None], Generator]
"""Builds the generator of one model: None is the base, a path is a checkpoint."""


def load_for_generation(checkpoint: Path | None, base_dir: Path, params: EvalParams):
    """The base (None) or a checkpoint, merged, in eval mode and the eval precision."""
    return load_for_inference(checkpoint, base_dir, params.bf16)


def check_backend(params: EvalParams) -> None:
    """Fail before any work when the chosen backend or an optional extra cannot run here."""
    if params.backend == "vllm" and not has_gpu():
        raise StageError("eval.backend vllm needs a CUDA GPU; use eval.backend: hf here")
    needed = {"vllm": params.backend == "vllm", "lm_eval": bool(params.lm_eval_tasks)}
    extras = {"vllm": "vllm", "lm_eval": "lm-eval"}
    for module, wanted in needed.items():
        if wanted and importlib.util.find_spec(module) is None:
            raise StageError(
                f"eval settings need the {extras[module]} extra: "
                f"pip install -e '.[{extras[module]}]'"
            )


def generator_factory(params: EvalParams, tokenizer, base_dir: Path) -> GeneratorFor:
    if params.backend == "vllm":
        config = base_generation_config(base_dir)
        vllm = VLLMGenerator(base_dir, stop_token_ids(config, tokenizer))

        def for_vllm(checkpoint: Path | None) -> Generator:
            vllm.use_adapter(checkpoint, checkpoint_step(checkpoint.name) + 1 if checkpoint else 0)
            return vllm

        return for_vllm

    def for_hf(checkpoint: Path | None) -> Generator:
        model = load_for_generation(checkpoint, base_dir, params)
        return HFGenerator(model, tokenizer, params.batch_size)

    return for_hf


def generation_settings(params: EvalParams) -> dict:
    """The eval settings that change outputs (the cache key adds code and library versions)."""
    return {
        "backend": params.backend,
        "bf16": use_bf16(params.bf16),
        "batch_size": params.batch_size,
    }
