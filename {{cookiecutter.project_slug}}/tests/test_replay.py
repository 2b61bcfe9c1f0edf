"""The replay stage: data/replay's prompts answered by the base itself (self-distillation),
unfinished answers dropped, nothing loaded when replay is off."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from {{ cookiecutter.module_name }}.data.chat import prompt_token_ids
from {{ cookiecutter.module_name }}.data.replay import replay_prompt, with_answers
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.evaluation import replay_answers
from {{ cookiecutter.module_name }}.evaluation.generation import HFGenerator, Request
from {{ cookiecutter.module_name }}.io import read_json, read_jsonl
from {{ cookiecutter.module_name }}.models.loading import load_model_with_adapter, load_tokenizer
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, PARAMS, REPLAY, REPLAY_REPORT, REPLAY_ROWS
from {{ cookiecutter.module_name }}.stages import replay as replay_stage

SHIPPED = Path(__file__).parents[1] / "data" / "replay"
CHAT = {
    "id": "replay-x",
    "messages": [
        {"role": "user", "content": "Name a colour."},
        {"role": "assistant", "content": "Blue."},
    ],
}


def test_with_answers_replaces_the_answer_and_drops_unfinished_rows() -> None:
    rows = [CHAT, {**CHAT, "id": "replay-y"}]
    (kept,) = with_answers(rows, ["Green.", None])
    assert kept["id"] == "replay-x" and kept["answered_by"] == "base"
    assert kept["messages"] == [CHAT["messages"][0], {"role": "assistant", "content": "Green."}]
    assert replay_prompt(CHAT) == CHAT["messages"][:1]
    with pytest.raises(ValueError, match="last turn must be the assistant's"):
        replay_prompt({"id": "bad", "messages": CHAT["messages"][:1]})


def set_split(**values) -> None:
    params = yaml.safe_load(PARAMS.read_text())
    params["split"] = {**params.get("split", {}), **values}
    PARAMS.write_text(yaml.safe_dump(params))


def test_stage_answers_with_the_base_and_keeps_only_finished_answers(project: Path) -> None:
    shutil.copytree(SHIPPED, project / "data" / "replay")
    set_split(replay_fraction=0.2, replay_answers="base", replay_max_new_tokens=6)
    replay_stage.main()
    report, kept = read_json(REPLAY_REPORT), read_jsonl(REPLAY_ROWS)
    rows = read_jsonl(REPLAY)
    assert report["rows"] == len(rows) and report["kept"] == len(kept)
    assert report["kept"] + report["dropped_unfinished"] == len(rows)
    # what the base itself generates for the first rows, finished or not
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    generator = HFGenerator(load_model_with_adapter(None, BASE_MODEL_DIR).eval(), tokenizer, 8)
    prompts = [Request(tuple(prompt_token_ids(tokenizer, replay_prompt(r))), 6) for r in rows[:8]]
    expected = {
        row["id"]: generator.decode(tokens)
        for row, tokens in zip(rows[:8], generator.token_ids(prompts), strict=True)
        if tokens and tokens[-1] in generator.stops and generator.decode(tokens)
    }
    answered = {row["id"]: row["messages"][-1]["content"] for row in kept}
    assert {k: answered[k] for k in answered.keys() & {r["id"] for r in rows[:8]}} == expected
    assert all(row["answered_by"] == "base" for row in kept)


def test_stage_stops_naming_a_missing_file_or_a_bad_row(project: Path) -> None:
    set_split(replay_fraction=0.2, replay_answers="data")
    with pytest.raises(StageError, match="does not exist: add it"):
        replay_stage.main()
    REPLAY.parent.mkdir(parents=True)
    REPLAY.write_text(json.dumps(CHAT) + "\n" + json.dumps({"id": "q", "messages": []}) + "\n")
    with pytest.raises(StageError, match=f"{REPLAY}:2: not a chat ending in an assistant"):
        replay_stage.main()
    assert not REPLAY_ROWS.exists()  # nothing written from a file the stage rejected


def test_stage_keeps_the_written_answers_or_writes_nothing_when_off(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(SHIPPED, project / "data" / "replay")

    def no_model(*args, **kwargs):
        raise AssertionError("no model is loaded for written answers or with replay off")

    monkeypatch.setattr(replay_answers, "load_for_inference", no_model)
    set_split(replay_fraction=0.2, replay_answers="data")
    replay_stage.main()
    assert read_jsonl(REPLAY_ROWS) == read_jsonl(REPLAY)
    set_split(replay_fraction=0.0, replay_answers="base")
    replay_stage.main()
    assert read_jsonl(REPLAY_ROWS) == [] and read_json(REPLAY_REPORT)["answers"] is None
