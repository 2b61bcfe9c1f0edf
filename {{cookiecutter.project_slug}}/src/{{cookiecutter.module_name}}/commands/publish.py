"""`make publish`: push the selected model to a Hugging Face Hub model repo.

`--what adapter` uploads models/selected (the adapter, or a full fine-tune's weights, with the
tokenizer and selection.json); `merged` the export stage's models/export/merged; `gguf` its
models/export/gguf (*.gguf and the Ollama Modelfile). Each goes with the model card
(models/selected/README.md, its metadata set for what is uploaded) and the project's LICENSE,
in one commit to `--repo-id` (created if missing). `--dry-run` lists every file with its size
and the target repo, and needs neither network nor token.

The token comes only from HF_TOKEN in the environment: never from a file or the command line,
never printed or written. A model whose guardrails failed (reports/metrics.json) is refused
unless `--force`."""

import argparse
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub import HfApi, ModelCard, constants
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import filter_repo_objects, validate_repo_id

from ..cli import run_stage
from ..errors import StageError
from ..evaluation.metric_names import TASK_ACCURACY, interval_text
from ..io import read_json
from ..models.hub import hub_error
from ..paths import CACHE_DIR, DIAGNOSIS, GGUF_EXPORT, MERGED_EXPORT, METRICS, SELECTED_DIR

TOKEN_VARIABLE = "HF_TOKEN"
CARD = "README.md"
LICENSE_FILE = Path("LICENSE")
# "no answer from the server" (refused, DNS, proxy, timeout) in httpx, requests and the builtins


@dataclass(frozen=True)
class Kind:
    """What one `--what` uploads: the files of `folder` that match `allow` and not `ignore`."""

    folder: Path
    allow: tuple[str, ...]
    ignore: tuple[str, ...]
    library: str | None  # the card's library_name; None: keep the card's own
    made_by: str  # what writes `folder`


HIDDEN = (".*", "*/.*")
KINDS = {
    "adapter": Kind(
        SELECTED_DIR,
        allow=("*.safetensors", "*.json", "*.jinja", "*.txt", "*.model"),
        ignore=("merged/*", *HIDDEN),  # merged/ is published as `--what merged`
        library=None,
        made_by="the select stage (`make repro`)",
    ),
    "merged": Kind(
        MERGED_EXPORT,
        allow=("*.safetensors", "*.json", "*.jinja", "*.txt", "*.model"),
        ignore=HIDDEN,
        library="transformers",
        made_by="the export stage with `merged` in export.formats (`make repro`)",
    ),
    "gguf": Kind(
        GGUF_EXPORT,
        allow=("*.gguf", "Modelfile"),
        ignore=HIDDEN,
        library="gguf",
        made_by="the export stage with `gguf` in export.formats (`make repro`)",
    ),
}


@dataclass(frozen=True)
class Plan:
    """Everything one publish uploads: files copied as they are, and the card's text."""

    what: str
    repo_id: str
    files: dict[str, Path]  # path in the repo -> local file
    card: str

    def sizes(self) -> dict[str, int]:
        sizes = {name: path.stat().st_size for name, path in self.files.items()}
        return dict(sorted((sizes | {CARD: len(self.card.encode("utf-8"))}).items()))


def guardrail_refusal(metrics: dict, diagnosis: dict) -> str | None:
    """Why a model must not be published without --force (None: it may be)."""
    if metrics.get("guardrails_passed"):
        return None
    failures = "; ".join(diagnosis.get("guardrail_failures", [])) or "see reports/report.md"
    return (
        f"{METRICS}: guardrails_passed is false, no checkpoint passed the guardrails "
        f"({failures}). {metrics.get('selected', 'The selected checkpoint')} is a best effort, "
        "not a model to share; fix the run (`make improve`), or publish it anyway with --force "
        "(make publish FORCE=1)"
    )


def kind_files(kind: Kind) -> dict[str, Path]:
    """The files of `kind.folder` to upload, by their path in the repo (the folder's card is
    replaced by the one the plan writes)."""
    if not kind.folder.is_dir():
        raise StageError(f"{kind.folder} does not exist: it is written by {kind.made_by}")
    found = {
        path.relative_to(kind.folder).as_posix(): path
        for path in sorted(kind.folder.rglob("*"))
        if path.is_file()
    }
    names = filter_repo_objects(found, allow_patterns=[*kind.allow], ignore_patterns=[*kind.ignore])
    files = {name: found[name] for name in names if name != CARD}
    if not files:
        raise StageError(f"{kind.folder} holds no file to publish ({', '.join(kind.allow)})")
    return files


def usage(what: str, repo_id: str, card: ModelCard, stacked: bool) -> str:
    """How to load what this repo holds, for the top of its card."""
    if what == "gguf":
        return (
            f"This repository holds the GGUF export: `hf download {repo_id} --local-dir model`, "
            "then `ollama create <name> -f model/Modelfile`, or run the .gguf with llama.cpp."
        )
    if what == "merged" or card.data.library_name != "peft":
        return f"Load from the Hub: `AutoModelForCausalLM.from_pretrained('{repo_id}')`."
    base = card.data.base_model or "<the base model>"
    text = (
        "Load from the Hub: `PeftModel.from_pretrained("
        f"AutoModelForCausalLM.from_pretrained('{base}'), '{repo_id}')`."
    )
    if stacked:  # a DPO adapter trained on top of the SFT one
        text += " This adapter sits on the SFT adapter in sft_adapter/: merge that one first."
    return text


def card_for(what: str, repo_id: str, text: str, stacked: bool = False) -> str:
    """models/selected/README.md made the card of what is uploaded: a merged model or a GGUF
    is a fine-tune of the base (not an adapter) and loads with another library."""
    card = ModelCard(text)
    library = KINDS[what].library
    if library:
        card.data.library_name = library
        card.data.tags = list(dict.fromkeys([*(card.data.tags or []), what]))
        if card.data.get("base_model"):
            card.data["base_model_relation"] = "finetune"
    title, newline, rest = card.text.lstrip("\n").partition("\n")
    if not title.startswith("# "):
        title, rest = "", f"{title}\n{rest}"
    card.text = f"\n{title}{newline}\n{usage(what, repo_id, card, stacked)}\n{rest}"
    return str(card)


def plan(what: str, repo_id: str) -> Plan:
    """What `--what` uploads to `repo_id`; a missing input is an error naming what makes it."""
    if not (SELECTED_DIR / CARD).is_file():
        raise StageError(f"{SELECTED_DIR / CARD} does not exist: run the pipeline (`make repro`)")
    files = kind_files(KINDS[what])
    if LICENSE_FILE.is_file():
        files["LICENSE"] = LICENSE_FILE  # the card's license, and its link for `other`
    stacked = any(name.startswith("sft_adapter/") for name in files)
    card = card_for(what, repo_id, (SELECTED_DIR / CARD).read_text(encoding="utf-8"), stacked)
    return Plan(what, repo_id, files, card)


def listing(plan: Plan, private: bool, revision: str | None) -> str:
    """The dry run's report: the target, then every file with its size in bytes."""
    sizes = plan.sizes()
    width = max(len(f"{size:,}") for size in sizes.values())
    lines = [
        f"publish: dry run, nothing uploaded: {len(sizes)} files, {sum(sizes.values()):,} bytes "
        f"({plan.what}) to {constants.ENDPOINT}/{plan.repo_id} (model repo, "
        f"{'private' if private else 'public'} if created, revision {revision or 'main'})",
        *(f"  {size:>{width},} B  {name}" for name, size in sizes.items()),
    ]
    return "\n".join(lines)


def stage(plan: Plan, folder: Path) -> None:
    """Lay out the plan in `folder` as it will be in the repo: hard links where the
    filesystem allows (no copy of the weights), else copies."""
    for name, source in plan.files.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)
    (folder / CARD).write_text(plan.card, encoding="utf-8")


@contextmanager
def hub_errors(repo_id: str) -> Iterator[None]:
    """The Hub's failures the user must fix, as StageErrors: the token refused, another error
    answer, a model card the Hub rejects, no answer at all."""
    try:
        yield
    except ValueError as error:  # upload_folder has the Hub validate the card's metadata
        if CARD not in str(error):
            raise
        raise StageError(f"the Hub rejected the model card: {error}") from None
    except Exception as error:
        failure = hub_error(
            error,
            doing=f"publish {repo_id}",
            refused=f"the token in {TOKEN_VARIABLE}",
            token_fix=f"it needs write access to {repo_id}",
            offline_fix="check the network (or HF_ENDPOINT) and run it again",
        )
        if failure is None:
            raise
        raise failure from None


def upload(plan: Plan, token: str, private: bool, revision: str | None, message: str) -> str:
    """Create the repo (kept if it exists) and the branch, then upload the plan in one
    commit; returns the commit's URL."""
    api = HfApi(token=token)
    CACHE_DIR.mkdir(exist_ok=True)
    with hub_errors(plan.repo_id), tempfile.TemporaryDirectory(dir=CACHE_DIR) as folder:
        api.create_repo(plan.repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and revision != constants.DEFAULT_REVISION:
            api.create_branch(plan.repo_id, branch=revision, exist_ok=True)
        stage(plan, Path(folder))
        commit = api.upload_folder(
            repo_id=plan.repo_id,
            folder_path=folder,
            allow_patterns=list(plan.sizes()),  # exactly the files the dry run lists
            commit_message=message,
            revision=revision,
        )
    return commit.commit_url


def default_message(what: str, metrics: dict) -> str:
    """`<checkpoint> (<what>): test task accuracy 0.750 [0.500, 1.000]`."""
    accuracy = metrics.get(TASK_ACCURACY)
    text = f"{metrics.get('selected', 'selected model')} ({what})"
    if accuracy is None:
        return text
    text += f": test task accuracy {accuracy:.3f}"
    return text + interval_text(metrics, TASK_ACCURACY)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo-id", required=True, help="the model repo: <user or org>/<name>")
    parser.add_argument("--what", choices=sorted(KINDS), default="adapter")
    parser.add_argument("--private", action="store_true", help="create the repo private")
    parser.add_argument("--dry-run", action="store_true", help="list the files, upload nothing")
    parser.add_argument("--revision", help="the branch to commit to (created if missing)")
    parser.add_argument("--message", help="the commit message")
    parser.add_argument("--force", action="store_true", help="publish despite failed guardrails")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        validate_repo_id(args.repo_id)
    except HFValidationError as error:
        raise StageError(f"--repo-id {args.repo_id!r}: {error}") from None
    if "/" not in args.repo_id:
        raise StageError(f"--repo-id {args.repo_id!r}: name the owner too, <user or org>/<name>")
    if not METRICS.is_file():
        raise StageError(f"{METRICS} does not exist: run the pipeline (`make repro`)")
    metrics = read_json(METRICS)
    refusal = guardrail_refusal(metrics, read_json(DIAGNOSIS) if DIAGNOSIS.is_file() else {})
    if refusal and not args.force:
        raise StageError(f"refused: {refusal}")
    planned = plan(args.what, args.repo_id)
    if args.dry_run:
        print(listing(planned, args.private, args.revision))
        return
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        raise StageError(
            f"{TOKEN_VARIABLE} is not set: create a write token at "
            f"https://huggingface.co/settings/tokens and export {TOKEN_VARIABLE}=<token> "
            "(publish reads the token from the environment only)"
        )
    message = args.message or default_message(args.what, metrics)
    url = upload(planned, token, args.private, args.revision, message)
    print(f"publish: {len(planned.sizes())} files ({args.what}) to {args.repo_id}: {url}")


if __name__ == "__main__":
    run_stage("publish", main)
