"""GRPO rewards: they score completions exactly as eval's task scorer and format check do, and
TRL's GRPOTrainer runs with them on the tiny model."""

import json
import math
import pickle
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.evaluation.metric_names import FORMAT_CORRECT, TASK_SCORE
from {{ cookiecutter.module_name }}.evaluation.scoring import score_task_item
from {{ cookiecutter.module_name }}.io import read_jsonl
from {{ cookiecutter.module_name }}.params import TaskParams, parse_params
from {{ cookiecutter.module_name }}.training.rewards import (
    FIELD_SHARE,
    TARGET,
    field_share_reward,
    format_reward,
    reward_functions,
    reward_rows,
    task_reward,
)

FIELDS = ["category", "priority", "needs_human", "reply"]
JSON_TASK = TaskParams(target_format="json", fields=FIELDS, score_fields=FIELDS[:3])
TEXT_TASK = TaskParams(target_format="text", scorer="chrf")
ANSWER = {"category": "billing", "priority": "high", "needs_human": True, "reply": "Sorry!"}
TARGET_JSON = json.dumps(ANSWER)


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def rewards(task: TaskParams, outputs: list[str], target: str) -> tuple[list, list]:
    """(task rewards, format rewards) of conversational completions, as TRL calls them."""
    completions = [assistant(output) for output in outputs]
    kwargs = {"prompts": [[]] * len(outputs), "completions": completions}
    targets = [target] * len(outputs)
    return (
        task_reward(task)(**kwargs, target=targets, trainer_state=None),
        format_reward(task)(**kwargs, target=targets, trainer_state=None),
    )


def eval_scores(task: TaskParams, outputs: list[str], target: str) -> tuple[list, list]:
    items = [score_task_item(output, target, task) for output in outputs]
    return [item["score"] for item in items], [float(item["format_ok"]) for item in items]


def test_json_rewards_agree_with_the_eval_scorer() -> None:
    outputs = [
        # key order, spacing and a different reply (not a score field) do not matter
        json.dumps({**ANSWER, "reply": "We will refund you."}, indent=1),
        json.dumps({**ANSWER, "category": "shipping"}),  # a wrong label
        '{"category": "billing", "priority": "high"',  # broken JSON
        TARGET_JSON + " Hope this helps!",  # right fields, then drift
    ]
    task, form = rewards(JSON_TASK, outputs, TARGET_JSON)
    assert (task, form) == eval_scores(JSON_TASK, outputs, TARGET_JSON)
    assert task == [1.0, 0.0, 0.0, 1.0]
    assert form == [1.0, 1.0, 0.0, 0.0]


def test_field_share_gives_partial_credit_where_the_task_score_gives_none() -> None:
    outputs = [
        TARGET_JSON,
        json.dumps({**ANSWER, "category": "shipping"}),  # 2 of the 3 score fields
        json.dumps({**ANSWER, "category": "shipping", "priority": "low"}),  # 1 of 3
        "not json",
    ]
    completions = [assistant(output) for output in outputs]
    shares = field_share_reward(JSON_TASK)(completions=completions, target=[TARGET_JSON] * 4)
    assert shares == [1.0, 2 / 3, 1 / 3, 0.0]
    assert rewards(JSON_TASK, outputs, TARGET_JSON)[0] == [1.0, 0.0, 0.0, 0.0]
    # a task without fields: the task score itself (chrF here)
    text = field_share_reward(TEXT_TASK)(completions=[assistant("Reset it.")], target=["Reset it."])
    assert text == [1.0]


def test_free_text_reward_is_the_graded_chrf_score() -> None:
    target = "Please reset your password from the login page and try again."
    outputs = [target, "Reset your password on the login page.", "", "Zebras eat grass."]
    task, form = rewards(TEXT_TASK, outputs, target)
    assert (task, form) == eval_scores(TEXT_TASK, outputs, target)
    assert task[0] == 1.0
    assert 0.0 < task[1] < 1.0  # partial credit for a partial answer
    assert task[1] > task[3]
    assert form == [1.0, 1.0, 0.0, 1.0]


def test_plain_text_completions_are_scored_like_messages() -> None:
    outputs = [f"  {TARGET_JSON}\n", "not json"]
    reward = task_reward(JSON_TASK)
    as_text = reward(prompts=["p", "p"], completions=outputs, target=[TARGET_JSON] * 2)
    assert as_text == rewards(JSON_TASK, outputs, TARGET_JSON)[0] == [1.0, 0.0]


def test_reward_functions_follow_the_named_weights() -> None:
    named = {FORMAT_CORRECT: 0.5, TASK_SCORE: 1.0, FIELD_SHARE: 0.25}
    funcs, weights = reward_functions(JSON_TASK, named)
    assert weights == [1.0, 0.5, 0.25]
    completions = [assistant(json.dumps({**ANSWER, "category": "shipping"}))]
    scored = [f(prompts=[[]], completions=completions, target=[TARGET_JSON]) for f in funcs]
    assert scored == [[0.0], [1.0], [2 / 3]]  # task, format, then 2 of 3 score fields right
    for func in funcs:  # module-level functions bound with partial pickle (closures do not)
        again = pickle.loads(pickle.dumps(func))
        assert again(prompts=[[]], completions=completions, target=[TARGET_JSON]) == func(
            prompts=[[]], completions=completions, target=[TARGET_JSON]
        )
    for wrong in ({TASK_SCORE: 1.0}, {**named, "length": 1.0}):
        with pytest.raises(ValueError, match="must name exactly"):
            reward_functions(JSON_TASK, wrong)


def recording(func, calls: list[dict]):
    """`func` (a partial of a module-level reward) keeping each call's arguments, under the
    reward's own name: TRL logs each reward by its function's name."""

    def record(**kwargs):
        calls.append(kwargs)
        return func(**kwargs)

    record.__name__ = func.func.__name__
    return record


def test_grpo_runs_on_the_tiny_model_with_these_rewards(project: Path, tmp_path: Path) -> None:
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from {{ cookiecutter.module_name }}.models.loading import load_base_model, load_tokenizer
    from {{ cookiecutter.module_name }}.training.trainer import lora_config

    params = parse_params(yaml.safe_load(Path("params.yaml").read_text()))
    rows = reward_rows(read_jsonl(Path("data/splits/train.jsonl"))[:4])
    assert all(isinstance(row[TARGET], str) and row[TARGET] for row in rows)
    funcs, weights = reward_functions(
        params.task, {TASK_SCORE: 1.0, FORMAT_CORRECT: 0.5, FIELD_SHARE: 0.0}
    )
    calls: list[dict] = []
    config = GRPOConfig(
        output_dir=str(tmp_path / "grpo"),
        per_device_train_batch_size=4,
        num_generations=2,
        max_completion_length=12,
        max_steps=2,
        learning_rate=1e-3,
        beta=0.04,  # a KL term against the adapter-free model, as the stage will log it
        reward_weights=weights,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        bf16=False,
        seed=params.seed,
        dataloader_num_workers=0,
    )
    trainer = GRPOTrainer(
        model=load_base_model(Path("models/base")),
        reward_funcs=[recording(func, calls) for func in funcs],
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=load_tokenizer(Path("models/base")),
        peft_config=lora_config(params.train),
    )
    trainer.train()

    # a step is 4 completions (the batch size): 2 prompts x 2 generations, so the 2 steps
    # sample each of the 4 prompts; every completion is scored against its own row's target
    target_of = {json.dumps(row["prompt"]): row[TARGET] for row in rows}
    assert len(calls) == 2 * len(funcs)
    assert {json.dumps(prompt) for call in calls for prompt in call["prompts"]} == set(target_of)
    for call in calls:
        assert len(call["completions"]) == 4
        assert call[TARGET] == [target_of[json.dumps(prompt)] for prompt in call["prompts"]]
    logged = [entry for entry in trainer.state.log_history if "reward" in entry]
    assert len(logged) == 2
    for entry in logged:
        for key in ("reward", f"rewards/{TASK_SCORE}/mean", f"rewards/{FORMAT_CORRECT}/mean"):
            assert math.isfinite(entry[key]), (key, entry)
        assert 0.0 <= entry[f"rewards/{TASK_SCORE}/mean"] <= 1.0
        assert 0.0 <= entry[f"rewards/{FORMAT_CORRECT}/mean"] <= 1.0
        assert math.isfinite(entry["kl"]) and math.isfinite(entry["loss"])
