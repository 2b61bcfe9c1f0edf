"""Chat templates of every model family: a template without a system role folds the system
prompt into the first user turn everywhere the tokenizer is loaded, a row the template rejects
stops curate naming the row, and for each family's tiny model the tokens the masking audit
(data/masking.py, what curate counts) marks as trained are the tokens TRL's collator puts in
the batch's labels, every assistant turn of a multi-turn chat included."""

import json
import shutil
from pathlib import Path

import pytest
from transformers import GenerationConfig

from curating import curate_counted, curate_lines
from {{ cookiecutter.module_name }}.data.chat import prompt_token_ids, to_prompt_completion
from {{ cookiecutter.module_name }}.data.curation import token_counting
from {{ cookiecutter.module_name }}.data.curator import Curator
from {{ cookiecutter.module_name }}.data.data_report import SYSTEM_FOLDED, template_blocks
from {{ cookiecutter.module_name }}.data.masking import (
    ChatEncoder,
    RowError,
    token_counter,
    trainable_tokens,
)
from {{ cookiecutter.module_name }}.data.workers import worker_pool
from {{ cookiecutter.module_name }}.document import to_markdown
from {{ cookiecutter.module_name }}.errors import StageError
from {{ cookiecutter.module_name }}.models.chat_template import (
    SYSTEM_FOLDING,
    fold_system_if_needed,
    folds_system,
    has_system_role,
)
from {{ cookiecutter.module_name }}.models.loading import load_tokenizer
from {{ cookiecutter.module_name }}.params import (
    CurateParams,
    QualityParams,
    TaskParams,
    TrainParams,
    load_params,
)
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR
from {{ cookiecutter.module_name }}.training.trainer import build_trainer
from tiny_model import FAMILIES, build_tiny_model

TEMPLATES = Path(__file__).parent / "fixtures" / "test_templates"
# ChatML that rejects a system turn, as Gemma 2's template does
NO_SYSTEM = (TEMPLATES / "no_system.jinja").read_text()
# ChatML that keeps the system prompt only while the user's turn is the last (Mistral v0.3)
SYSTEM_IN_PROMPTS_ONLY = (TEMPLATES / "system_in_prompts_only.jinja").read_text()
# ChatML headed by the number of turns: the turns before an answer, rendered on their own, are
# not the start of the whole chat
TURN_COUNT = (TEMPLATES / "turn_count.jinja").read_text()


def system(text: str) -> dict:
    return {"role": "system", "content": text}


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


CHATS = {
    "system": [
        system("Answer briefly and politely."),
        user("My refund for order 1042 is late."),
        assistant("Sorry! The refund was sent today."),
    ],
    "multi_turn": [
        system("You are a helpful support agent."),
        user("What is the capital of France?"),
        assistant("Paris."),
        user("And the quick brown fox?"),
        assistant("It jumps over the lazy dog."),
        user("Thanks, what about the login error?"),
        assistant("Please reset your password from the app settings."),
    ],
    "no_system": [
        user("Hello, can you help with my invoice?"),
        assistant("Of course, what is wrong with it?"),
        user("It shows the wrong address."),
        assistant("I will correct it and send a new invoice."),
    ],
}
MAX_LENGTH = 512
FOLDING = {"gemma2", "mistral"}  # Gemma 2 rejects a system turn, Mistral v0.3 drops it
# role headers of the families' templates: context, never trained
HEADERS = ("user", "system", "assistant", "model\n", "<start_of_turn>", "<|im_start|>", "[INST]")


def raw(*chats: list[dict], file: str = "data/raw/a.jsonl") -> list[tuple[str, int, bytes]]:
    return [
        (file, line, json.dumps({"messages": chat}).encode())
        for line, chat in enumerate(chats, start=1)
    ]


def curate(chats: list[list[dict]], count) -> list[dict]:
    cfg = CurateParams(quality=QualityParams(scripts=["latin"]))
    result = curate_lines(raw(*chats), TaskParams(), cfg, count, MAX_LENGTH, MAX_LENGTH)
    assert not result.quarantined and not result.duplicates
    return result.kept


@pytest.fixture
def tokenizer(tiny_model_dir: Path):
    return load_tokenizer(tiny_model_dir)


@pytest.fixture
def base_with(tmp_path: Path, tiny_model_dir: Path):
    """A copy of the tiny model whose tokenizer has the given chat template."""

    def make(template: str, base: Path = tmp_path / "base") -> Path:
        shutil.copytree(tiny_model_dir, base, dirs_exist_ok=True)
        tokenizer = load_tokenizer(base)
        tokenizer.chat_template = template
        tokenizer.save_pretrained(base)
        return base

    return make


# ------------------------------------------------------------------ folding the system prompt


def test_a_template_without_a_system_role_folds_the_system_prompt(tokenizer) -> None:
    assert has_system_role(tokenizer) and not fold_system_if_needed(tokenizer)  # ChatML
    chatml = tokenizer.apply_chat_template(CHATS["system"], tokenize=False)
    for template in (NO_SYSTEM, SYSTEM_IN_PROMPTS_ONLY):
        tokenizer.chat_template = template
        assert not has_system_role(tokenizer)
        assert fold_system_if_needed(tokenizer) and folds_system(tokenizer)
        assert tokenizer.chat_template == SYSTEM_FOLDING + template
        assert fold_system_if_needed(tokenizer)  # once only
        assert tokenizer.chat_template == SYSTEM_FOLDING + template
        text = tokenizer.apply_chat_template(CHATS["system"], tokenize=False)
        assert text == (
            "<|im_start|>user\nAnswer briefly and politely.\n\nMy refund for order 1042 is late."
            "<|im_end|>\n<|im_start|>assistant\nSorry! The refund was sent today.<|im_end|>\n"
        )
        assert text != chatml
        # no system turn: the template renders as it always did
        rest = CHATS["no_system"]
        assert tokenizer.apply_chat_template(rest, tokenize=False) == (
            tokenizer.apply_chat_template(rest, tokenize=False, chat_template=template)
        )


def test_every_loaded_tokenizer_folds_and_the_saved_one_keeps_folding(
    base_with, tmp_path: Path
) -> None:
    """load_tokenizer is what every stage uses and what export/merged.py saves: the saved
    tokenizer, loaded by plain transformers (the merged model, its GGUF, `make serve`),
    renders the system prompt folded too, and loading it again does not fold twice."""
    from transformers import AutoTokenizer

    base = base_with(NO_SYSTEM)
    tokenizer = load_tokenizer(base)
    assert folds_system(tokenizer)
    expected = tokenizer.apply_chat_template(CHATS["system"][:-1], tokenize=False)
    shutil.copytree(base, tmp_path / "merged")  # as export/merged.py writes it
    tokenizer.save_pretrained(tmp_path / "merged")
    plain = AutoTokenizer.from_pretrained(tmp_path / "merged", trust_remote_code=False)
    assert plain.apply_chat_template(CHATS["system"][:-1], tokenize=False) == expected
    assert load_tokenizer(tmp_path / "merged").chat_template == tokenizer.chat_template


def test_curate_reports_the_folding_in_data_md(
    base_with, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_with(NO_SYSTEM, tmp_path / BASE_MODEL_DIR)
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"messages": c}) + "\n" for c in CHATS.values()))
    cfg = CurateParams(quality=QualityParams(scripts=["latin"]))
    train = TrainParams.model_validate({})
    with token_counting([path], BASE_MODEL_DIR, train, MAX_LENGTH) as counting:
        result = curate_counted([path], TaskParams(), cfg, counting)
    report = result.report
    assert report["chat"] == {"assistant_turns": "all", "system_folded": True}
    assert not result.decisions.reasons  # the system rows render, folded
    markdown = to_markdown(template_blocks(report), tmp_path)
    assert markdown.strip() == SYSTEM_FOLDED
    assert "has no system role: system prompts are folded into the first user turn" in markdown
    assert template_blocks({"chat": {"system_folded": False}}) == []


# ------------------------------------------------------------- rows the template cannot take


def test_a_row_the_template_rejects_stops_curate_naming_it(tokenizer) -> None:
    tokenizer.chat_template = NO_SYSTEM
    fold_system_if_needed(tokenizer)
    bad = [user("Hello?"), user("Anyone there?"), assistant("Yes, how can I help?")]
    rows = raw(CHATS["system"], bad, CHATS["no_system"])
    with pytest.raises(StageError) as caught:
        curate_lines(rows, TaskParams(), CurateParams(), token_counter(tokenizer), 512, 512)
    message = str(caught.value)
    assert message == (
        "data/raw/a.jsonl:2: the chat template rejects it: Conversation roles must alternate "
        "user/assistant/user/assistant/..."
    )
    assert "\n" not in message and "Traceback" not in message


def test_worker_processes_name_the_row_too(base_with) -> None:
    """The error crosses the process boundary (curate's worker pool on large inputs)."""
    base = base_with(NO_SYSTEM)
    bad = [user("Hello?"), user("Anyone there?"), assistant("Yes, how can I help?")]
    lines = [(line, data) for _, line, data in raw(CHATS["system"], CHATS["no_system"], bad)]
    with worker_pool(1, base) as pool:
        curator = Curator(TaskParams(), CurateParams(), None, 512, pool, 512)
        with pytest.raises(StageError, match=r"^data/raw/b\.jsonl:3: the chat template rejects"):
            curator.add_file("data/raw/b.jsonl", lines)


@pytest.mark.parametrize("turns", ["all", "last"])
def test_a_template_that_renders_the_context_differently_fails_loudly(tokenizer, turns) -> None:
    """Where the answer starts (the turns before it, rendered with the generation prompt, part
    from the whole chat) would fall inside the user's turn: stop, never train on it."""
    tokenizer.chat_template = TURN_COUNT
    chats = [CHATS["no_system"], CHATS["no_system"][:2]]
    with pytest.raises(RowError, match="renders the turns before assistant turn") as caught:
        ChatEncoder(tokenizer, turns)(chats)
    assert caught.value.index == 0


def test_a_row_error_survives_pickling() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(RowError(3, "why")))
    assert (error.index, error.reason, str(error)) == (3, "why", "row 3: why")


# --------------------------------------------------------- every family: audit == TRL's labels


@pytest.fixture(scope="session")
def family_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {family: build_tiny_model(root / family, family=family) for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_trl_trains_what_the_audit_counts(
    project: Path, family_models: dict[str, Path], family: str
) -> None:
    """For every family: system prompts fold where the template has no system role; curate's
    token counts are the lengths TRL trains on; the tokens the audit marks (every assistant
    turn: its answer and end-of-turn token, no user or system text, no role header) are
    exactly those whose label is not -100 in the batch TRL's collator builds; each answer
    includes a stop token; eval's prompt is the training prefix of the final answer."""
    shutil.rmtree(BASE_MODEL_DIR)
    shutil.copytree(family_models[family], BASE_MODEL_DIR)
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    assert folds_system(tokenizer) == (family in FOLDING)
    rendered = tokenizer.apply_chat_template(CHATS["system"], tokenize=False)
    assert "Answer briefly and politely." in rendered
    if family in FOLDING:
        assert "Answer briefly and politely.\n\nMy refund for order 1042 is late." in rendered

    count = token_counter(tokenizer, "all")
    kept = curate(list(CHATS.values()), count)
    params = load_params()
    params = params.model_copy(
        update={"train": params.train.model_copy(update={"max_length": MAX_LENGTH})}
    )
    sft = build_trainer(params, BASE_MODEL_DIR, kept, None, project / "run")
    examples = [sft.train_dataset[k] for k in range(len(sft.train_dataset))]
    assert len(examples) == len(kept)
    batch = sft.data_collator(examples)
    eos = GenerationConfig.from_pretrained(BASE_MODEL_DIR).eos_token_id
    stops = set(eos if isinstance(eos, list) else [eos])
    for k, (row, chat) in enumerate(zip(kept, CHATS.values(), strict=True)):
        ids = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"]
        (lengths,) = count([chat])
        audit = [any(a <= i < b for a, b in lengths.spans) for i in range(len(ids))]
        assert row["tokens"] == len(ids) == lengths.total <= MAX_LENGTH
        assert batch["input_ids"][k, : len(ids)].tolist() == list(ids)
        labels = batch["labels"][k].tolist()
        assert [label != -100 for label in labels[: len(ids)]] == audit
        assert all(label == -100 for label in labels[len(ids) :])  # padding
        assert row["trainable_tokens"] == sum(audit) == trainable_tokens(lengths, MAX_LENGTH)

        answers = [turn["content"] for turn in chat if turn["role"] == "assistant"]
        others = [turn["content"] for turn in chat if turn["role"] != "assistant"]
        assert len(lengths.spans) == len(answers)
        for (a, b), answer in zip(lengths.spans, answers, strict=True):
            text = tokenizer.decode(ids[a:b], skip_special_tokens=False)
            assert answer in text, (family, text)
            assert not any(other in text for other in others), (family, text)
            assert not any(header in text for header in HEADERS), (family, text)
            assert stops & set(ids[a:b]), (family, text)  # the model learns to stop
        prompt = to_prompt_completion(chat)["prompt"]
        assert prompt_token_ids(tokenizer, prompt) == list(ids[: lengths.spans[-1][0]])
