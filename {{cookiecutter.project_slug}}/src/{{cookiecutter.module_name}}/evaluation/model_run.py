"""One model's generations and val loss, served from the generation cache where possible: the
model itself is only built on the first miss."""

import time
from pathlib import Path

from ..data.masking import Encoded
from ..models.loading import adapter_stack
from .backend import GeneratorFor
from .cache import GenerationCache, cache_key, loss_key, weights_digest
from .generation import Generator, Request
from .val_loss import val_loss


class ModelRun:
    """The base on `base_dir` (checkpoint None) or a checkpoint on top of it."""

    def __init__(
        self,
        checkpoint: Path | None,
        base_dir: Path,
        generator_for: GeneratorFor,
        cache: GenerationCache,
        settings: dict,
    ):
        parts = [base_dir, *adapter_stack(checkpoint)]
        self.checkpoint = checkpoint
        self.digest = weights_digest(parts)
        self.generator_for = generator_for
        self.cache = cache
        self.settings = settings
        self.generator: Generator | None = None
        self.generated = 0
        self.seconds = 0.0

    def outputs(self, requests: list[Request], desc: str) -> list[str]:
        key = cache_key(self.digest, requests, self.settings)
        cached = self.cache.get(key, len(requests))
        if cached is not None:
            return cached
        started = time.perf_counter()
        outputs = self.built()(requests, desc)
        self.seconds += time.perf_counter() - started
        self.generated += len(requests)
        self.cache.put(key, outputs)
        return outputs

    def val_loss(self, rows: tuple[Encoded, ...]) -> float | None:
        """The model's val loss on `rows` (val_loss.py), cached like the outputs; None where
        the generator holds no transformers model (eval.backend vllm)."""
        if not rows:
            return None
        key = loss_key(self.digest, rows, self.settings)
        cached = self.cache.get(key, 1)
        if cached is not None:
            return cached[0]
        started = time.perf_counter()
        generator = self.built()
        model = getattr(generator, "model", None)
        if model is None:
            return None
        loss = val_loss(model, rows, generator.pad_id)
        self.seconds += time.perf_counter() - started
        self.cache.put(key, [loss])
        return loss

    def built(self) -> Generator:
        """The model's generator, built (the model loaded) on the first cache miss."""
        if self.generator is None:
            self.generator = self.generator_for(self.checkpoint)
        return self.generator

    def stamp(self, report: dict) -> dict:
        """Record the generation time and count since the last stamp."""
        report["seconds"] = round(self.seconds, 1)
        report["generated"] = self.generated  # 0: every output came from the cache
        self.seconds, self.generated = 0.0, 0
        return report
