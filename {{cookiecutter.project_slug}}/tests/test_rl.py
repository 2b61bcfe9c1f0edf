"""The optional rl stage (GRPO rewarded by the task scorer): its pure parts (the prompts, the
reward hook and its errors, the starting checkpoint, the params checks, the fingerprint), and
GRPO on the tiny model from the chosen SFT checkpoint through eval_rl and select, resumed after
a crash and after a real SIGKILL."""

import math
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from helpers import read_tsv, run_python
from {{ cookiecutter.module_name }} import paths
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.io import read_json, write_json
from {{ cookiecutter.module_name }}.models.loading import (
    SFT_POINTER,
    adapter_stack,
    load_model_with_adapter,
    load_tokenizer,
)
from {{ cookiecutter.module_name }}.params import ParamsError, SelectParams, parse_params
from {{ cookiecutter.module_name }}.paths import (
    BASE_MODEL_DIR,
    CHECKPOINTS_DIR,
    EVAL_DIR,
    RL_DIR,
    RL_EVAL_DIR,
    RL_FIGURE,
    RL_LOG_DIR,
    SELECTED_DIR,
)
from {{ cookiecutter.module_name }}.stages import eval as eval_stage
from {{ cookiecutter.module_name }}.stages import eval_rl as eval_rl_stage
from {{ cookiecutter.module_name }}.stages import rl as rl_stage
from {{ cookiecutter.module_name }}.stages import select as select_stage
from {{ cookiecutter.module_name }}.stages import smoke as smoke_stage
from {{ cookiecutter.module_name }}.stages import train as train_stage
from {{ cookiecutter.module_name }}.training import advisor, grpo
from {{ cookiecutter.module_name }}.training.checkpoints import complete_checkpoints, write_manifest

MODULE = "{{ cookiecutter.module_name }}"
# A reward of the user's own (rl.reward): longer completions score more. The random tiny model
# scores 0 on the task, so this is what gives its groups different rewards, hence gradients.
USER_REWARD = """
def longer(completions, **kwargs):
    return [len(completion[-1]["content"]) / 10 for completion in completions]
"""
TINY_RL = {
    "enabled": True,
    "prompts_per_step": 2,
    "num_generations": 2,
    "max_completion_length": 8,
    "max_steps": 4,
    "save_steps": 2,
    "logging_steps": 1,
    "learning_rate": 5e-3,
    "lora_r": 4,
    "lora_alpha": 8,
    "reward": "user_rewards:longer",
}


def turn(role: str, content: str) -> dict:
    return {"role": role, "content": content}


def row(user: str, answer: str, origin: str = "task") -> dict:
    return {
        "prompt": [turn("system", "Triage."), turn("user", user)],
        "completion": [turn("assistant", answer)],
        "origin": origin,
    }


def report(model: str, step: int, accuracy: float, stage: str | None = None, **metrics) -> dict:
    values = {
        "task_accuracy": accuracy,
        "format_correct": 1.0,
        "general_qa": 0.5,
        "forgetting_score": 0.0,
    } | metrics
    role = {"base": "base", "fewshot": "fewshot"}.get(model, "checkpoint")
    found = {"model": model, "role": role, "step": step, "metrics": values}
    return found | ({"stage": stage} if stage else {})


def params_with(rl: dict, **sections) -> dict:
    return {"rl": rl, **sections}


# ------------------------------------------------------------------------ pure parts


def test_prompts_are_the_task_rows_with_their_targets() -> None:
    rows = [row("a", '{"x": 1}'), row("b", "general chat", origin="replay"), row("c", "y")]
    prompts = grpo.prompt_rows(rows)
    assert [p["prompt"][-1]["content"] for p in prompts] == ["a", "c"]
    assert [p["target"] for p in prompts] == ['{"x": 1}', "y"]


def test_the_starting_checkpoint_is_the_one_select_would_pick_among_sft(tmp_path: Path) -> None:
    eval_dir, checkpoints = tmp_path / "eval", tmp_path / "checkpoints"
    reports = [
        report("base", 0, 0.1),
        report("fewshot", 0, 0.9),
        report("checkpoint-2", 2, 0.5),
        report("checkpoint-4", 4, 0.8),
        report("checkpoint-6", 6, 0.9, forgetting_score=0.9),  # breaks max_forgetting
        report("dpo-checkpoint-2", 8, 1.0, stage="dpo"),  # not an SFT checkpoint
    ]
    for found in reports:
        write_json(eval_dir / f"{found['model']}.json", found)
    for name in ("checkpoint-2", "checkpoint-4", "checkpoint-6"):
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / "adapter_model.safetensors").write_bytes(name.encode())
        (checkpoints / name / "trainer_state.json").write_text("{}")
    manifest = tmp_path / "checkpoints.json"
    write_manifest(checkpoints, manifest)
    files = replace(
        rl_stage.FILES, eval_dir=eval_dir, sft_checkpoints=checkpoints, sft_manifest=manifest
    )
    params = parse_params({"select": SelectParams(max_forgetting=0.5).model_dump()})
    assert grpo.starting_checkpoint(params, files) == checkpoints / "checkpoint-4"
    for path in eval_dir.glob("checkpoint-*.json"):
        path.unlink()
    with pytest.raises(StageError, match="no SFT checkpoint reports"):
        grpo.starting_checkpoint(params, files)


def test_the_reward_hook_is_imported_and_its_mistakes_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "my_rewards.py").write_text(
        USER_REWARD
        + "\ndef task_score(completions, **kwargs):\n    return []\nNOT_A_FUNCTION = 1\n"
    )
    params = parse_params(params_with({"reward": "my_rewards:longer", "reward_weight": 0.5}))
    funcs, weights = grpo.rewards(params)
    assert weights == [1.0, 0.5, 0.0, 0.5]  # task_score, format_correct, field_share, the hook
    assert funcs[-1]([[turn("assistant", "12345")]]) == [0.5]
    for spec, message in (
        ("no_such_module:longer", "cannot import no_such_module"),
        ("my_rewards:missing", "my_rewards has no function missing"),
        ("my_rewards:NOT_A_FUNCTION", "has no function NOT_A_FUNCTION"),
        ("my_rewards:task_score", "built-in reward's name"),
    ):
        with pytest.raises(StageError, match=message) as info:
            grpo.user_reward(spec)
        assert f"rl.reward {spec}" in str(info.value)


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        (params_with({"reward": "not a hook"}), "rl.reward", "module:function"),
        (
            params_with(
                {"reward_weights": {"task_score": 0, "format_correct": 0, "field_share": 0}}
            ),
            "rl",
            "every reward weight is 0",
        ),
        (params_with({"num_generations": 1}), "rl.num_generations", "greater than or equal to 2"),
        (
            params_with({"enabled": True}, eval={"backend": "vllm"}),
            "",
            "use eval.backend hf",
        ),
    ],
)
def test_bad_rl_params_fail_naming_the_key(raw: dict, key: str, message: str) -> None:
    with pytest.raises(ParamsError) as info:
        parse_params(raw)
    assert key in str(info.value)
    assert message in str(info.value)


def test_a_zero_weighted_builtin_with_a_hook_is_allowed() -> None:
    raw = params_with({"reward_weights": {"task_score": 0, "format_correct": 0}, "reward": "m:f"})
    assert parse_params(raw).rl.reward == "m:f"


def test_the_fingerprint_changes_with_what_the_rewards_score_by(tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint-4"
    checkpoint.mkdir()
    (checkpoint / "adapter_model.safetensors").write_bytes(b"weights")
    rows = [{"prompt": [turn("user", "a")], "target": "b"}]
    reference = grpo.fingerprint(parse_params({}), rows, checkpoint)
    assert grpo.fingerprint(parse_params({}), rows, checkpoint) == reference
    for changed in (
        {"task": {"scorer": "exact"}},
        {"rl": {"temperature": 1.0}},
        {"rl": {"max_completion_length": 20}},
    ):
        assert grpo.fingerprint(parse_params(changed), rows, checkpoint) != reference, changed
    assert grpo.fingerprint(parse_params({}), rows + rows, checkpoint) != reference
    (checkpoint / "adapter_model.safetensors").write_bytes(b"other weights")
    assert grpo.fingerprint(parse_params({}), rows, checkpoint) != reference


# ------------------------------------------------------------- GRPO on the tiny model, e2e


def enable_rl(**overrides) -> None:
    Path("user_rewards.py").write_text(USER_REWARD)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["rl"] = TINY_RL | overrides
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def train_and_eval_sft(best: str = "checkpoint-4") -> None:
    """SFT checkpoints 4 and 6, scored by eval, with `best` made the best on val."""
    train_stage.main()
    eval_stage.main()
    path = EVAL_DIR / f"{best}.json"
    chosen = read_json(path)
    chosen["metrics"]["task_accuracy"] = 1.0
    write_json(path, chosen)


def logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


@pytest.mark.e2e
def test_rl_from_the_chosen_sft_checkpoint_through_eval_rl_and_select(
    project: Path,
) -> None:
    train_and_eval_sft("checkpoint-4")  # not the last SFT checkpoint (checkpoint-6)
    enable_rl()

    rl_stage.main()

    checkpoints = complete_checkpoints(RL_DIR)
    assert [path.name for path in checkpoints] == ["checkpoint-2", "checkpoint-4"]
    sft = CHECKPOINTS_DIR / "checkpoint-4"
    for checkpoint in checkpoints:
        assert read_json(checkpoint / SFT_POINTER) == {
            "checkpoint": "checkpoint-4",
            "path": "models/checkpoints/checkpoint-4",
            "step": 4,
            "stage": "rl",
        }
        assert adapter_stack(checkpoint) == [sft, checkpoint]
    stats = read_json(paths.RL_STATS)
    assert (stats["sft_checkpoint"], stats["global_step"]) == ("checkpoint-4", 4)
    assert stats["rewards"] == {
        "task_score": 1.0,
        "format_correct": 0.5,
        "field_share": 0.0,
        "longer": 1.0,
    }
    assert stats["prompts"] == len([r for r in project_rows() if r.get("origin") != "replay"])
    for key in ("reward", "kl", "completions/mean_length"):
        assert math.isfinite(stats["final"][key]), key
        steps = [int(r["step"]) for r in read_tsv(RL_LOG_DIR / f"plots/metrics/{key}.tsv")]
        assert steps == [1, 2, 3, 4], key
    assert len(read_tsv(RL_LOG_DIR / "plots/metrics/rewards/longer/mean.tsv")) == 4
    assert RL_FIGURE.stat().st_size > 10_000

    # the user's reward gave the groups different rewards: the RL model moved off the SFT one
    ids = torch.tensor([load_tokenizer(BASE_MODEL_DIR)("billing refund password")["input_ids"]])
    stacked = logits(load_model_with_adapter(checkpoints[-1], BASE_MODEL_DIR), ids)
    assert not torch.allclose(stacked, logits(load_model_with_adapter(sft, BASE_MODEL_DIR), ids))

    (RL_EVAL_DIR / "off.txt").parent.mkdir(parents=True, exist_ok=True)
    (RL_EVAL_DIR / "off.txt").write_text("stale")
    eval_rl_stage.main()
    assert not (RL_EVAL_DIR / "off.txt").exists()
    for name, step in (("rl-checkpoint-2", 6), ("rl-checkpoint-4", 8)):
        found = read_json(RL_EVAL_DIR / f"{name}.json")
        assert (found["role"], found["stage"], found["step"]) == ("checkpoint", "rl", step)
        assert found["val_loss"] is None
        assert "forgetting_score" in found["metrics"]
    assert sorted(path.name for path in EVAL_DIR.glob("rl-*")) == []

    # select chooses between SFT and RL checkpoints, and puts the RL curves in the report
    best = read_json(RL_EVAL_DIR / "rl-checkpoint-4.json")
    best["metrics"]["task_accuracy"] = 1.0
    best["metrics"]["format_correct"] = 1.0
    write_json(RL_EVAL_DIR / "rl-checkpoint-4.json", best)
    select_stage.main()
    assert read_json(SELECTED_DIR / "selection.json")["checkpoint"] == "rl-checkpoint-4"
    assert read_json(SELECTED_DIR / SFT_POINTER)["stage"] == "rl"
    assert "rl/curves.png" in paths.REPORT_MD.read_text()
    assert torch.allclose(
        logits(load_model_with_adapter(SELECTED_DIR, BASE_MODEL_DIR), ids), stacked, atol=1e-5
    )

    # a crash after checkpoint-2: the rerun resumes from it instead of starting over
    first, last = checkpoints
    kept = {path.name: path.stat().st_mtime_ns for path in first.iterdir()}
    shutil.rmtree(last)
    rl_stage.main()
    assert {path.name: path.stat().st_mtime_ns for path in first.iterdir()} == kept
    assert [path.name for path in complete_checkpoints(RL_DIR)] == ["checkpoint-2", "checkpoint-4"]
    steps = [int(r["step"]) for r in read_tsv(RL_LOG_DIR / "plots/metrics/reward.tsv")]
    assert steps == [1, 2, 3, 4]

    # turned off: no RL checkpoint is left to be scored or selected
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["rl"]["enabled"] = False
    Path("params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    rl_stage.main()
    assert sorted(path.name for path in RL_DIR.iterdir()) == ["disabled.json"]
    eval_rl_stage.main()
    assert [path.name for path in RL_EVAL_DIR.iterdir()] == ["off.txt"]


def project_rows() -> list[dict]:
    from {{ cookiecutter.module_name }}.io import read_jsonl

    return read_jsonl(paths.TRAIN_SPLIT)


# Runs the rl stage in this process and SIGKILLs it right after optimizer step `at`
# (train_rl calls the build_trainer of its module, so that is the name patched).
KILLER = f"""
import os, signal, sys
from transformers import TrainerCallback
from {MODULE}.stages import rl
from {MODULE}.training import grpo

at = int(sys.argv[1])

class KillAfterStep(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == at:
            os.kill(os.getpid(), signal.SIGKILL)

build_trainer = grpo.build_trainer
def with_killer(*args, callbacks=None, **kwargs):
    return build_trainer(*args, callbacks=[*(callbacks or []), KillAfterStep()], **kwargs)
grpo.build_trainer = with_killer
rl.main()
"""


def run_rl(*kill_at: str) -> subprocess.CompletedProcess:
    command = ["-c", KILLER, *kill_at] if kill_at else ["-m", f"{MODULE}.stages.rl"]
    return run_python(*command)


def final_adapter() -> dict[str, torch.Tensor]:
    return load_file(RL_DIR / "checkpoint-4" / "adapter_model.safetensors")


@pytest.mark.e2e
def test_a_killed_rl_run_resumes_to_the_uninterrupted_result(project: Path) -> None:
    train_and_eval_sft()
    enable_rl()
    done = run_rl()
    assert done.returncode == 0, done.stderr[-3000:]
    reference = final_adapter()
    rewards = [r["reward"] for r in read_tsv(RL_LOG_DIR / "plots/metrics/reward.tsv")]

    shutil.rmtree(RL_DIR)
    killed = run_rl("3")  # after checkpoint-2, before checkpoint-4
    assert killed.returncode == -9, killed.stderr[-3000:]
    assert [path.name for path in complete_checkpoints(RL_DIR)] == ["checkpoint-2"]
    resumed = run_rl()
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "rl: resuming from models/rl/checkpoint-2" in resumed.stdout
    assert [path.name for path in complete_checkpoints(RL_DIR)] == ["checkpoint-2", "checkpoint-4"]
    assert [r["reward"] for r in read_tsv(RL_LOG_DIR / "plots/metrics/reward.tsv")] == rewards
    adapter = final_adapter()
    assert adapter.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(adapter[name], tensor), f"{name} differs from the uninterrupted run"


# ------------------------------------------------------------------ smoke and the advisor


def test_the_advisor_counts_what_grpo_generates_and_times_it_when_smoke_did(
    tmp_path: Path,
) -> None:
    off = parse_params({})
    assert advisor.rl_cost(off) is None
    params = parse_params(
        {
            "rl": {
                "enabled": True,
                "prompts_per_step": 4,
                "num_generations": 8,
                "max_completion_length": 50,
                "max_steps": 30,
            }
        }
    )
    cost = advisor.rl_cost(params)
    assert (cost.tokens_per_step, cost.steps) == (4 * 8 * 50, 30)
    assert "4 prompts x 8 completions x up to 50 tokens (~1,600 tokens" in advisor.rl_note(cost)
    assert "run `dvc repro smoke` to time a step" in advisor.rl_note(cost)
    timed = advisor.rl_note(advisor.rl_cost(params, 12.0))
    assert "30 steps ~6 min at the smoke stage's 12 s/step" in timed

    smoke = tmp_path / "smoke.json"
    write_json(smoke, {"rl": {"seconds_per_step": 12.0, "tokens_per_step": 1600}})
    assert advisor.read_rl_measured(smoke, params) == 12.0
    longer = params.model_copy(update={"rl": params.rl.model_copy(update={"num_generations": 4})})
    assert advisor.read_rl_measured(smoke, longer) is None  # timed for another shape
    assert advisor.read_rl_measured(smoke, off) is None


@pytest.mark.e2e
def test_smoke_runs_grpo_steps_and_the_advice_carries_their_cost(project: Path) -> None:
    enable_rl(max_steps=10)
    smoke_stage.main()
    report = read_json(paths.SMOKE_REPORT)
    rl = report["rl"]
    assert report["passed"] and rl["problem"] is None
    assert rl["steps"] == 3 and rl["full_run_steps"] == 10
    assert rl["tokens_per_step"] == 2 * 2 * 8
    assert rl["rewards"] == {
        "task_score": 1.0,
        "format_correct": 0.5,
        "field_share": 0.0,
        "longer": 1.0,
    }
    assert math.isfinite(rl["reward_last"]) and math.isfinite(rl["loss_last"])
    assert rl["seconds_per_step"] > 0
    notes = " ".join(report["advice"]["notes"])
    assert f"at the smoke stage's {rl['seconds_per_step']:.3g} s/step" in notes


def test_a_broken_reward_hook_fails_the_smoke_stage_before_training(project: Path) -> None:
    enable_rl(reward="user_rewards:no_such_function")
    with pytest.raises(StageError, match="user_rewards has no function no_such_function"):
        smoke_stage.main()
