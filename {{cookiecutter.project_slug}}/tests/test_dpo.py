"""The optional DPO stage: its pure parts (held-out filter, the min_pairs error, the resume
fingerprint, the disabled path), curate keeping preference pairs apart from SFT rows, the demo
pairs, and DPO on top of SFT on the tiny model through eval and select."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from curating import curate_files, curate_lines
from helpers import read_tsv
from {{ cookiecutter.module_name }} import paths
from {{ cookiecutter.module_name }}.data.curation import raw_files
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import read_json, read_jsonl, write_json, write_jsonl
from {{ cookiecutter.module_name }}.models.loading import (
    SFT_EXPORT,
    SFT_POINTER,
    adapter_stack,
    load_base_model,
    load_model_with_adapter,
    load_tokenizer,
)
from {{ cookiecutter.module_name }}.params import CurateParams, TaskParams, parse_params
from {{ cookiecutter.module_name }}.paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    DPO_DIR,
    DPO_LOG_DIR,
    EVAL_DIR,
    EVAL_PLOT,
    PREFERENCES,
    SELECTED_DIR,
)
from {{ cookiecutter.module_name }}.stages import dpo as dpo_stage
from {{ cookiecutter.module_name }}.stages import eval as eval_stage
from {{ cookiecutter.module_name }}.stages import select as select_stage
from {{ cookiecutter.module_name }}.stages import train as train_stage
from {{ cookiecutter.module_name }}.training import dpo
from {{ cookiecutter.module_name }}.training.checkpoints import complete_checkpoints, write_manifest

PROJECT = Path(__file__).parents[1]
RAW = PROJECT / "data" / "raw"
SYSTEM = "Triage the ticket. Reply with JSON only."
GOOD = json.dumps({"category": "billing", "priority": "high"})
BAD = '{"category": "billing", and I think this is a billing question.'


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def pair(user: str, system: str | None = SYSTEM, chosen: str = GOOD, rejected: str = BAD) -> dict:
    prompt = ([turn("system", system)] if system else []) + [turn("user", user)]
    return {
        "prompt": prompt,
        "chosen": [turn("assistant", chosen)],
        "rejected": [turn("assistant", rejected)],
    }


def held_out_row(user: str) -> dict:
    return {"prompt": [turn("system", SYSTEM), turn("user", user)], "completion": []}


# ----------------------------------------------------------------------- held-out filter


def test_pairs_sharing_a_val_or_test_prompt_are_dropped() -> None:
    pairs = [
        pair("My invoice is wrong"),
        pair("  my INVOICE is\nwrong "),  # the same text once case and spacing are normalised
        pair("My invoice is wrong", system="Another system prompt"),  # system is not the text
        pair("Where is my parcel?"),
        pair("My invoice is wrong!"),  # different words: kept
    ]
    kept, dropped = dpo.drop_held_out(pairs, [held_out_row("My invoice is wrong")])
    assert dropped == pairs[:3]
    assert kept == pairs[3:]


def test_no_held_out_rows_drop_nothing() -> None:
    pairs = [pair("a"), pair("b")]
    assert dpo.drop_held_out(pairs, []) == (pairs, [])


# ------------------------------------------------------------------------------ min_pairs


def test_too_few_pairs_says_how_many_where_from_and_what_to_do() -> None:
    with pytest.raises(StageError) as info:
        dpo.check_enough(found=3, min_pairs=8, dropped=2, files=dpo_stage.FILES)
    message = str(info.value)
    for needed in (
        "3 usable preference pairs",
        "2 more were dropped",
        "dpo.min_pairs=8",
        str(PREFERENCES),
        "`preference` format",
        "prompt, chosen and rejected",
        "data/raw/README.md",
        "dpo.enabled=false",
    ):
        assert needed in message, needed


def test_enough_pairs_pass_and_no_overlap_is_not_mentioned() -> None:
    assert dpo.check_enough(found=8, min_pairs=8, dropped=0, files=dpo_stage.FILES) is None
    with pytest.raises(StageError) as info:
        dpo.check_enough(found=0, min_pairs=1, dropped=0, files=dpo_stage.FILES)
    assert "dropped" not in str(info.value)


# ---------------------------------------------------------------------------- fingerprint


def make_sft_checkpoint(root: Path, step: int, weights: bytes = b"w") -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir(parents=True)
    (path / "adapter_model.safetensors").write_bytes(weights)
    (path / "adapter_config.json").write_text("{}")
    (path / "optimizer.pt").write_bytes(b"optimizer state")
    return path


def test_fingerprint_tracks_params_pairs_and_the_sft_checkpoint(tmp_path: Path) -> None:
    sft = make_sft_checkpoint(tmp_path, 6)
    params, pairs = parse_params({}), [pair("a"), pair("b")]
    stamp = dpo.fingerprint(params, pairs, sft)
    assert dpo.fingerprint(parse_params({}), list(pairs), sft) == stamp
    changed = {
        "beta": dpo.fingerprint(parse_params({"dpo": {"beta": 0.3}}), pairs, sft),
        "train": dpo.fingerprint(parse_params({"train": {"lora_r": 16}}), pairs, sft),
        "seed": dpo.fingerprint(parse_params({"seed": 7}), pairs, sft),
        "pairs": dpo.fingerprint(params, [pair("a"), pair("c")], sft),
        "sft name": dpo.fingerprint(params, pairs, make_sft_checkpoint(tmp_path, 8)),
        "sft weights": dpo.fingerprint(
            params, pairs, make_sft_checkpoint(tmp_path / "retrained", 6, b"other")
        ),
    }
    for what, other in changed.items():
        assert other != stamp, f"{what} does not change the fingerprint"
    # neither the spike threshold, other sections nor optimizer state do
    same = [
        dpo.fingerprint(parse_params({"train": {"max_loss_spike": 9.0}}), pairs, sft),
        dpo.fingerprint(parse_params({"eval": {"batch_size": 2}}), pairs, sft),
    ]
    (sft / "optimizer.pt").write_bytes(b"changed")
    same.append(dpo.fingerprint(params, pairs, sft))
    assert all(other == stamp for other in same)


def test_final_rewards_are_the_last_logged_ones() -> None:
    history = [
        {"loss": 0.69, "rewards/accuracies": 0.5, "rewards/margins": 0.0, "step": 1},
        {"loss": 0.41, "rewards/accuracies": 0.875, "rewards/margins": 0.71234, "step": 5},
        {"train_loss": 0.5, "step": 5},  # the end-of-training summary
    ]
    assert dpo.final_rewards(history) == {
        "loss": 0.41,
        "rewards/accuracies": 0.875,
        "rewards/margins": 0.7123,
    }
    assert dpo.final_rewards([{"train_loss": 0.5}]) == {}


def test_no_sft_checkpoint_says_run_train(tmp_path: Path) -> None:
    make_sft_checkpoint(tmp_path, 4)  # no trainer_state.json: not complete
    manifest = tmp_path / "checkpoints.json"
    with pytest.raises(StageError, match="not found: run `dvc repro train`"):
        dpo.last_sft_checkpoint(manifest)
    write_manifest(tmp_path, manifest)
    with pytest.raises(StageError, match="lists no SFT checkpoint: run `dvc repro train`"):
        dpo.last_sft_checkpoint(manifest)


# -------------------------------------------------------------------------- disabled path


def test_disabled_writes_markers_removes_old_checkpoints_and_loads_no_model(
    tmp_path: Path,
) -> None:
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"dpo": {"enabled": False}}))
    stale = tmp_path / DPO_DIR / "checkpoint-3"
    stale.mkdir(parents=True)
    (stale / SFT_POINTER).write_text("{}")
    script = (
        "import sys\n"
        f"from {dpo_stage.__name__} import main\n"
        "main()\n"
        "print('imported:', sorted({'torch', 'transformers', 'trl'} & set(sys.modules)))\n"
    )
    src = str(Path(dpo_stage.__file__).parents[2])
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": src},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "imported: []" in result.stdout
    assert "dvc exp run -S dpo.enabled=true" in result.stdout
    assert not stale.exists()
    assert sorted(path.name for path in (tmp_path / DPO_DIR).iterdir()) == ["disabled.json"]
    assert read_json(tmp_path / paths.DPO_DISABLED_MARKER)["enabled"] is False
    assert read_json(tmp_path / paths.DPO_STATS) == {"enabled": False}


# ------------------------------------------------------------------- curate: apart from SFT


def raw_line(row: dict, file: str, number: int = 1) -> tuple[str, int, bytes]:
    return (file, number, json.dumps(row).encode())


def test_curate_deduplicates_preference_pairs_only_among_themselves() -> None:
    short, long = "My invoice is wrong", "My invoice for Nimbus Pro is wrong, I was charged twice"
    sft_rows = [
        {"messages": [turn("user", text), turn("assistant", GOOD)]} for text in (short, long)
    ]
    pairs = [pair(short, system=None), pair(short, system=None), pair(long + "!", system=None)]
    rows = [raw_line(p, "data/raw/a_pairs.jsonl", n) for n, p in enumerate(pairs, start=1)]
    rows += [raw_line(r, "data/raw/b_chat.jsonl", n) for n, r in enumerate(sft_rows, start=1)]
    result = curate_lines(rows, TaskParams(), CurateParams())
    # the SFT rows survive although pairs come first and share (exactly, nearly) their text
    assert [row["prompt"][-1]["content"] for row in result.kept] == [short, long]
    assert [row["source"] for row in result.preferences] == [
        "data/raw/a_pairs.jsonl:1",
        "data/raw/a_pairs.jsonl:3",
    ]
    (duplicate,) = result.duplicates  # a pair repeated is still a duplicate
    assert (duplicate["source"], duplicate["duplicate_of"]) == (
        "data/raw/a_pairs.jsonl:2",
        "data/raw/a_pairs.jsonl:1",
    )
    # and SFT rows are grouped with SFT rows only: each is its own group here
    assert all(row["group"] == row["id"] for row in result.kept)


# ----------------------------------------------------------------------------- demo pairs


def demo_script():
    spec = importlib.util.spec_from_file_location(
        "make_demo_data", PROJECT / "scripts" / "make_demo_data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_pairs_are_new_tickets_with_a_worse_rejected_answer() -> None:
    script = demo_script()
    chat = script.generate(120, 13)
    tickets = script.chat_tickets(chat)
    lines = script.generate_preferences(30, 13, tickets)
    assert lines == script.generate_preferences(30, 13, tickets)  # seeded
    assert script.generate(120, 13) == chat  # pairs use their own random stream
    rows = [json.loads(line) for line in lines]
    users = [row["prompt"][-1]["content"] for row in rows]
    assert len(set(users)) == 30 and not set(users) & tickets
    kinds = [row["rejected_kind"] for row in rows]
    assert {kind: kinds.count(kind) for kind in set(kinds)} == dict.fromkeys(
        script.REJECTED_KINDS, 10
    )
    for row in rows:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        chosen = json.loads(row["chosen"][0]["content"])
        rejected = row["rejected"][0]["content"]
        assert list(chosen) == ["category", "priority", "needs_human", "reply"]
        if row["rejected_kind"] == "drift":
            assert rejected.startswith('{"category": "' + chosen["category"])
            with pytest.raises(json.JSONDecodeError):
                json.loads(rejected)
        else:
            field = row["rejected_kind"].removeprefix("wrong_")
            wrong = json.loads(rejected)
            assert wrong[field] != chosen[field]
            assert {k: v for k, v in wrong.items() if k != field} == {
                k: v for k, v in chosen.items() if k != field
            }


SHIPPED_PAIRS = RAW / "support_preferences.jsonl"
SHIPPED_CHAT = RAW / "support_tickets.jsonl"


@pytest.mark.skipif(not SHIPPED_CHAT.exists(), reason="this preset ships no demo data")
def test_shipped_pairs_are_the_generators_and_leave_the_sft_rows_alone() -> None:
    script = demo_script()
    expected = script.generate_preferences(60, 13, script.chat_tickets(script.generate(300, 13)))
    assert SHIPPED_PAIRS.read_text(encoding="utf-8") == "\n".join(expected) + "\n"
    task = TaskParams(
        target_format="json",
        fields=["category", "priority", "needs_human", "reply"],
        score_fields=["category"],
    )
    both = curate_files(raw_files(RAW), task, CurateParams())
    chat_only = curate_files([RAW / SHIPPED_CHAT.name], task, CurateParams())
    assert both.kept == chat_only.kept
    assert len(both.preferences) == 60


# ------------------------------------------------------------- DPO on the tiny model, e2e


TINY_DPO = {
    "enabled": True,
    "beta": 0.1,
    "learning_rate": 5e-3,
    "num_epochs": 1,
    "batch_size": 4,
    "lora_r": 4,
    "lora_alpha": 8,
    "save_steps": 2,
    "logging_steps": 1,
    "min_pairs": 8,
}


def drifting(row: dict) -> list[dict]:
    answer = row["completion"][-1]["content"]
    return [turn("assistant", answer[:24] + " I hope this helps, have a great day!")]


def write_pairs(train_rows: list[dict], val_rows: list[dict]) -> None:
    """12 pairs on train prompts, plus 2 on val prompts (written differently) to be dropped."""
    pairs = [
        {"prompt": r["prompt"], "chosen": r["completion"], "rejected": drifting(r)}
        for r in train_rows[:12]
    ]
    for row in val_rows[:2]:
        prompt = [{**m, "content": m["content"].upper()} for m in row["prompt"]]
        pairs.append({"prompt": prompt, "chosen": row["completion"], "rejected": drifting(row)})
    write_jsonl(PREFERENCES, pairs)


def enable_dpo() -> None:
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["dpo"] = TINY_DPO
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


def test_dpo_on_sft_then_eval_select_and_resume(project: Path, tmp_path: Path) -> None:
    train_stage.main()
    sft_last = complete_checkpoints(CHECKPOINTS_DIR)[-1]
    assert sft_last.name == "checkpoint-6"
    write_pairs(
        read_jsonl(Path("data/splits/train.jsonl")), read_jsonl(Path("data/splits/val.jsonl"))
    )
    enable_dpo()

    dpo_stage.main()

    checkpoints = complete_checkpoints(DPO_DIR)
    assert [path.name for path in checkpoints] == ["checkpoint-2", "checkpoint-3"]
    for checkpoint in checkpoints:
        assert (checkpoint / "adapter_model.safetensors").exists()
        assert read_json(checkpoint / SFT_POINTER) == {
            "checkpoint": "checkpoint-6",
            "path": "models/checkpoints/checkpoint-6",
            "step": 6,
            "stage": "dpo",
        }
        assert adapter_stack(checkpoint) == [sft_last, checkpoint]
    stats = read_json(paths.DPO_STATS)
    assert (stats["pairs"], stats["pairs_dropped_held_out"], stats["global_step"]) == (12, 2, 3)
    assert stats["sft_checkpoint"] == "checkpoint-6"
    assert 0 <= stats["final"]["rewards/accuracies"] <= 1
    assert [int(row["step"]) for row in read_tsv(DPO_LOG_DIR / "plots/metrics/loss.tsv")] == [
        1,
        2,
        3,
    ]
    assert len(read_tsv(DPO_LOG_DIR / "plots/metrics/rewards/accuracies.tsv")) == 3

    # base -> SFT merged -> DPO merged: differs from the SFT model and from DPO on the bare base
    ids = torch.tensor([load_tokenizer(BASE_MODEL_DIR)("billing refund password")["input_ids"]])
    stacked = logits(load_model_with_adapter(checkpoints[-1], BASE_MODEL_DIR), ids)
    sft = logits(load_model_with_adapter(sft_last, BASE_MODEL_DIR), ids)
    from peft import PeftModel

    unstacked = PeftModel.from_pretrained(
        load_base_model(BASE_MODEL_DIR), str(checkpoints[-1])
    ).merge_and_unload()
    assert not torch.allclose(stacked, sft, atol=1e-5)
    assert not torch.allclose(stacked, logits(unstacked, ids), atol=1e-5)

    eval_stage.main()
    for name, step in (("dpo-checkpoint-2", 8), ("dpo-checkpoint-3", 9)):
        report = read_json(EVAL_DIR / f"{name}.json")
        assert (report["role"], report["stage"], report["step"]) == ("checkpoint", "dpo", step)
        assert report["val_loss"] is None  # DPO logs no val loss comparable with SFT's
        assert "task_accuracy" in report["metrics"]
    assert "stage" not in read_json(EVAL_DIR / "checkpoint-6.json")
    assert [row["step"] for row in read_json(EVAL_PLOT)] == [0, 4, 6, 8, 9]

    # select picks a DPO checkpoint when it is best, and exports a loadable stack
    best = read_json(EVAL_DIR / "dpo-checkpoint-3.json")
    best["metrics"]["task_accuracy"] = 1.0
    write_json(EVAL_DIR / "dpo-checkpoint-3.json", best)
    select_stage.main()
    assert read_json(SELECTED_DIR / "selection.json")["checkpoint"] == "dpo-checkpoint-3"
    assert read_json(SELECTED_DIR / SFT_POINTER)["checkpoint"] == "checkpoint-6"
    assert (SELECTED_DIR / SFT_EXPORT / "adapter_model.safetensors").exists()
    moved = tmp_path / "elsewhere"
    shutil.copytree(SELECTED_DIR, moved)
    CHECKPOINTS_DIR.rename(tmp_path / "aside")  # the export loads without the SFT checkpoints
    try:
        exported = logits(load_model_with_adapter(moved, BASE_MODEL_DIR), ids)
    finally:
        (tmp_path / "aside").rename(CHECKPOINTS_DIR)
    assert torch.allclose(exported, stacked, atol=1e-5)

    # a crash after checkpoint-2: the rerun resumes from it instead of starting over
    first, last = checkpoints
    kept = {path.name: path.stat().st_mtime_ns for path in first.iterdir()}
    shutil.rmtree(last)
    paths.DPO_STATS.unlink()
    dpo_stage.main()
    assert {path.name: path.stat().st_mtime_ns for path in first.iterdir()} == kept
    assert [path.name for path in complete_checkpoints(DPO_DIR)] == ["checkpoint-2", "checkpoint-3"]
    for name in ("loss", "rewards/accuracies"):  # the curves continue without repeated steps
        rows = read_tsv(DPO_LOG_DIR / f"plots/metrics/{name}.tsv")
        steps = [int(row["step"]) for row in rows]
        assert steps == [1, 2, 3], name
