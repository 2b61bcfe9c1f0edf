"""Which steps get a checkpoint: every save_steps, except one the run ends shortly after."""

from types import SimpleNamespace

import pytest

from {{ cookiecutter.module_name }}.training.trainer import skip_checkpoint_near_the_end


def saved_steps(max_steps: int, save_steps: int) -> list[int]:
    """The steps that keep their save, as the trainer's flow sets and the callback edits it."""
    callback = skip_checkpoint_near_the_end()
    args = SimpleNamespace(save_steps=save_steps)
    kept = []
    for step in range(1, max_steps + 1):
        due = step % save_steps == 0 or step == max_steps  # transformers' DefaultFlowCallback
        control = SimpleNamespace(should_save=due)
        state = SimpleNamespace(global_step=step, max_steps=max_steps)
        control = callback.on_step_end(args, state, control)
        if control.should_save:
            kept.append(step)
    return kept


@pytest.mark.parametrize(
    ("max_steps", "save_steps", "expected"),
    [
        (92, 31, [31, 62, 92]),  # the demo
        (102, 31, [31, 62, 102]),  # 93 is 9 steps before the end: the final one replaces it
        (96, 20, [20, 40, 60, 80, 96]),  # 16 steps before the end: kept
        (12, 4, [4, 8, 12]),
        (5, 10, [5]),
    ],
)
def test_a_checkpoint_just_before_the_end_is_skipped(
    max_steps: int, save_steps: int, expected: list[int]
) -> None:
    assert saved_steps(max_steps, save_steps) == expected
