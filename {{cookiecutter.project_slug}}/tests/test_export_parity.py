"""Export parity: how an export's answers are compared with the model eval scored."""

from pathlib import Path

import pytest

from {{ cookiecutter.module_name }}.evaluation.generation import Request
from {{ cookiecutter.module_name }}.export.build import ExportFiles, summary
from {{ cookiecutter.module_name }}.export.parity import (
    Generations,
    gguf_tokenizer,
    parity_failures,
    parity_row,
)
from {{ cookiecutter.module_name }}.params import TaskParams

TASK = TaskParams(target_format="text", scorer="exact")
ROWS = [
    {"id": f"r{i}", "prompt": [], "completion": [{"role": "assistant", "content": answer}]}
    for i, answer in enumerate(["yes", "no", "maybe", "yes"])
]
REQUESTS = [Request((1, 2, i), 8) for i in range(len(ROWS))]


def answers(outputs: list[str], stopped: list[bool], requests=REQUESTS) -> Generations:
    return Generations(requests=requests, outputs=outputs, stopped=stopped)


REFERENCE = answers(["yes", "no", "maybe", "yes"], [True, True, True, True])


def test_the_reference_agrees_with_itself() -> None:
    row = parity_row(ROWS, REFERENCE, REFERENCE, TASK)
    assert row == {"task_accuracy": 1.0, "stop_rate": 1.0, "agreement": 1.0, "same_prompts": True}
    assert parity_failures(row, row, "task_accuracy", 0.05) == []


def test_agreement_is_reported_not_required() -> None:
    """A quantised export may word a right answer differently: that is not a failure."""
    task = TaskParams(target_format="text", scorer="normalised")
    reworded = answers(["Yes.", "no", "maybe", "yes"], [True] * 4)
    reference = parity_row(ROWS, REFERENCE, REFERENCE, task)
    row = parity_row(ROWS, reworded, REFERENCE, task)
    assert row["agreement"] == 0.75 and row["task_accuracy"] == 1.0
    assert parity_failures(row, reference, "task_accuracy", 0.0) == []


def test_an_export_that_never_stops_fails_on_its_stop_rate() -> None:
    rambling = answers(["yes", "no", "maybe", "yes"], [False, False, True, True])
    reference = parity_row(ROWS, REFERENCE, REFERENCE, TASK)
    row = parity_row(ROWS, rambling, REFERENCE, TASK)
    (failure,) = parity_failures(row, reference, "task_accuracy", 0.05)
    assert failure.startswith("stop_rate 0.5 is 0.500 below")


def test_a_worse_export_fails_beyond_the_tolerance_only() -> None:
    worse = answers(["yes", "no", "maybe", "no"], [True] * 4)
    reference = parity_row(ROWS, REFERENCE, REFERENCE, TASK)
    row = parity_row(ROWS, worse, REFERENCE, TASK)
    assert row["task_accuracy"] == 0.75
    assert parity_failures(row, reference, "task_accuracy", 0.25) == []
    (failure,) = parity_failures(row, reference, "task_accuracy", 0.2)
    assert failure.startswith("task_accuracy 0.75 is 0.250 below")


def test_other_prompt_tokens_fail_whatever_the_answers() -> None:
    shifted = [Request((1, 3, i), 8) for i in range(len(ROWS))]
    same_answers = answers(REFERENCE.outputs, REFERENCE.stopped, shifted)
    reference = parity_row(ROWS, REFERENCE, REFERENCE, TASK)
    row = parity_row(ROWS, same_answers, REFERENCE, TASK)
    assert row["same_prompts"] is False
    (failure,) = parity_failures(row, reference, "task_accuracy", 1.0)
    assert "chat template" in failure


def test_a_gguf_tokenizer_transformers_cannot_rebuild_falls_back_to_the_training_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    from transformers import AutoTokenizer

    def refuse(*args, **kwargs):
        raise Exception("Error while initializing BPE: Token `\\n` out of vocabulary")

    monkeypatch.setattr(AutoTokenizer, "from_pretrained", refuse)
    training = object()
    assert gguf_tokenizer(tmp_path / "model-f16.gguf", {}, fallback=training) is training
    with pytest.raises(Exception, match="out of vocabulary"):
        gguf_tokenizer(tmp_path / "model-f16.gguf", {})


def parity_report(failures: dict[str, list[str]]) -> dict:
    rows = {"stop_rate": 1.0, "agreement": 1.0, "task_accuracy": 0.75}
    return {
        "metric": "task_accuracy",
        "exports": {
            "adapter": rows,
            "merged_f16": rows | {"passed": "merged_f16" not in failures},
            "gguf_q8_0": rows | {"passed": "gguf_q8_0" not in failures},
        },
        "failures": failures,
    }


NAMES = ["base", "sel", "test", "root", "merged", "gguf", "export.json", "export.md"]
FILES = ExportFiles(*(Path(name) for name in NAMES))


def test_a_parity_failure_stops_the_stage_or_is_marked_after_every_export_is_printed() -> None:
    failing = parity_report({"gguf_q8_0": ["stop rate 0.5 is 0.500 below"]})
    stopped = summary(failing, "fail", FILES)
    assert len(stopped.lines) == 3 and stopped.lines[-1].endswith("agreement 1.0  [FAIL]")
    assert stopped.lines[0] == "adapter: task_accuracy 0.75, stop rate 1.0, agreement 1.0"
    assert stopped.error == (
        "export parity failed (gguf_q8_0: stop rate 0.5 is 0.500 below); see export.md"
    )
    marked = summary(failing, "mark", FILES)
    assert marked.error is None and marked.lines[:3] == stopped.lines
    marked_line = "parity failed, marked in export.json: gguf_q8_0: stop rate 0.5 is 0.500 below"
    assert marked.lines[3] == marked_line
    passing = summary(parity_report({}), "fail", FILES)
    assert passing.error is None and not any("FAIL" in line for line in passing.lines)
