"""Generations cached per (model hash, prompt set, generation settings).

The base model is evaluated once across experiments, and re-running eval on an unchanged
checkpoint generates nothing. Only the raw outputs are cached: scoring always runs again, so a
fixed scorer applies to cached outputs too. The cache lives outside DVC's outputs (DVC deletes
a stage's outputs before it runs); delete `.cache/eval` or set `eval.cache: false` to bypass it.

The key holds everything that decides the outputs: the model's weights, config, generation
config (stop tokens) and tokenizer (decoding); the prompts' token ids, which also pin how
data/chat.py rendered them; the token budgets and generation settings; the source of the code
that loads the model and decodes (OUTPUT_SOURCES); and the versions of the libraries that run it
(OUTPUT_LIBRARIES). Editing one of those files (even a comment) regenerates, which is cheaper
than serving a fixed generator's stale outputs.
"""

from collections.abc import Iterable, Sequence
from pathlib import Path

from ..data.masking import Encoded
from ..io import content_hash, file_digest, read_json, write_json
from ..models.versions import package_versions
from .generation import Request

WEIGHT_FILES = {
    "config.json",
    "model.safetensors.index.json",
    "adapter_config.json",
    "manifest.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
}
PACKAGE_DIR = Path(__file__).resolve().parents[1]
OUTPUT_SOURCES = {
    name: PACKAGE_DIR.joinpath(*name.split(".")).with_suffix(".py")
    for name in ("evaluation.generation", "models.loading")
}
"""Modules whose code decides the generated text: decoding, and loading/merging the model."""
OUTPUT_LIBRARIES = ("torch", "transformers", "peft", "vllm")
"""Libraries that run generation (vllm: eval.backend vllm; None where not installed)."""


def weights_digest(directories: Iterable[Path]) -> str:
    """Hash of the weight and config files of a model (base dir, then checkpoint dir)."""
    return content_hash(
        [
            {path.name: file_digest(path)}
            for directory in directories
            for path in sorted(directory.iterdir())
            if path.name in WEIGHT_FILES or path.suffix == ".safetensors"
        ]
    )


def source_digest() -> str:
    """Hash of the source of OUTPUT_SOURCES."""
    return content_hash({name: file_digest(path) for name, path in OUTPUT_SOURCES.items()})


def cache_key(model_digest: str, requests: Sequence[Request], settings: dict) -> str:
    """Everything that decides the outputs: the weights, the token ids and budgets, the
    generation settings (backend, dtype, batch size), the generation code and the versions of
    the libraries that run it."""
    prompts = [[request.max_new_tokens, *request.prompt_ids] for request in requests]
    payload = {"model": model_digest, "requests": prompts, **settings}
    payload["code"] = source_digest()
    payload["libraries"] = package_versions(OUTPUT_LIBRARIES)
    return content_hash(payload)[:24]


def loss_key(model_digest: str, rows: Sequence[Encoded], settings: dict) -> str:
    """A val loss's key: the weights, the val rows' tokens and trained spans, the settings,
    the code that computes it and the libraries that run it."""
    loss_source = PACKAGE_DIR / "evaluation" / "val_loss.py"
    payload = {"model": model_digest, "rows": [[row.ids, row.spans] for row in rows], **settings}
    payload["code"] = [source_digest(), file_digest(loss_source)]
    payload["libraries"] = package_versions(OUTPUT_LIBRARIES)
    return "loss-" + content_hash(payload)[:24]


class GenerationCache:
    def __init__(self, directory: Path | None):
        self.directory = directory

    def get(self, key: str, expected: int) -> list | None:
        if self.directory is None:
            return None
        path = self.directory / f"{key}.json"
        if not path.exists():
            return None
        outputs = read_json(path).get("outputs")
        return outputs if isinstance(outputs, list) and len(outputs) == expected else None

    def put(self, key: str, outputs: list) -> None:
        if self.directory is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = self.directory / f"{key}.json.tmp"
        write_json(temporary, {"outputs": outputs})
        temporary.replace(self.directory / f"{key}.json")  # never a half-written entry
