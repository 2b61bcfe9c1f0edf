"""GRPO reward functions from the task's own scorer and format check, so the reward a run is
trained on is, by construction, the metric eval scores it with (evaluation/scoring.py).

Each reward has TRL GRPOTrainer's reward-function signature: keyword arguments `prompts`,
`completions` (message lists for conversational rows, strings otherwise) and every other
dataset column as a list, one entry per completion; it returns one float per completion. The
reference answer comes from the TARGET column (`reward_rows` adds it to prompt rows)."""

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ..data.chat import Messages, target_text
from ..evaluation.metric_names import FORMAT_CORRECT, TASK_SCORE
from ..evaluation.scoring import score_task_item
from ..params import TaskParams

TARGET = "target"
FIELD_SHARE = "field_share"
REWARD_NAMES = (TASK_SCORE, FORMAT_CORRECT, FIELD_SHARE)
# what GRPOTrainer logs by step (dvclive's curve names under reports/rl): the weighted reward
# sum, each reward's mean (rewards/<name>/mean), the KL to the reference, the completion length
REWARD_KEY, KL_KEY, LENGTH_KEY = "reward", "kl", "completions/mean_length"

RewardFunction = Callable[..., list[float]]


def reward_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """GRPO dataset rows from split rows: the prompt to sample from and the target to score
    against (GRPOTrainer passes every column but prompt/completion on to the rewards)."""
    return [{"prompt": row["prompt"], TARGET: target_text(row)} for row in rows]


def completion_text(completion: Messages | str) -> str:
    """The generated text, stripped as eval strips its outputs before scoring them."""
    text = completion[-1]["content"] if isinstance(completion, list) else completion
    return text.strip()


def score_items(completions: list, targets: list[str], task: TaskParams) -> list[dict[str, Any]]:
    return [
        score_task_item(completion_text(completion), target, task)
        for completion, target in zip(completions, targets, strict=True)
    ]


# The two rewards are module-level functions (bound to the task with functools.partial) so
# they pickle, and TRL logs each under its function name: rewards/task_score/mean and
# rewards/format_correct/mean, the names of the eval metrics they are the per-item form of.
def task_score(completions: list, target: list[str], task: TaskParams, **_: Any) -> list[float]:
    """The task scorer's item score: a graded scorer's value in [0, 1], else 0 or 1."""
    return [float(item["score"]) for item in score_items(completions, target, task)]


def format_correct(completions: list, target: list[str], task: TaskParams, **_: Any) -> list[float]:
    """1.0 when the completion passes eval's format check, else 0.0."""
    return [float(item["format_ok"]) for item in score_items(completions, target, task)]


def field_share(completions: list, target: list[str], task: TaskParams, **_: Any) -> list[float]:
    """JSON targets: the share of task.score_fields the completion gets right, partial credit
    where task_score is 1 only when all match; other tasks: the task score itself."""
    shares = []
    for item in score_items(completions, target, task):
        fields = item.get("fields")
        shares.append(sum(fields.values()) / len(fields) if fields else float(item["score"]))
    return shares


def task_reward(task: TaskParams) -> RewardFunction:
    return partial(task_score, task=task)


def format_reward(task: TaskParams) -> RewardFunction:
    return partial(format_correct, task=task)


def field_share_reward(task: TaskParams) -> RewardFunction:
    return partial(field_share, task=task)


REWARDS = {
    TASK_SCORE: task_reward,
    FORMAT_CORRECT: format_reward,
    FIELD_SHARE: field_share_reward,
}


def reward_functions(
    task: TaskParams, weights: Mapping[str, float]
) -> tuple[list[RewardFunction], list[float]]:
    """(reward_funcs for GRPOTrainer, reward_weights for GRPOConfig), in REWARD_NAMES order;
    `weights` gives each reward's weight by name (all of them, nothing else)."""
    if set(weights) != set(REWARD_NAMES):
        raise ValueError(
            f"reward weights name {sorted(weights)}; they must name exactly {list(REWARD_NAMES)}"
        )
    return [REWARDS[name](task) for name in REWARD_NAMES], [
        float(weights[name]) for name in REWARD_NAMES
    ]
