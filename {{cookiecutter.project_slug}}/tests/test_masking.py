"""What the model is trained on: curate's trainable-token count of every row equals the mask
TRL's SFTTrainer trains with (chat template, every assistant turn or the last, cut to
train.max_length), a row left with nothing to train is quarantined where TRL would silently
drop it, and the training example page shows the tokens TRL trains on. Other model families'
templates: tests/test_chat_format.py."""

import json
import random
from pathlib import Path

import pytest

from curating import CurateResult, curate_lines
from {{ cookiecutter.module_name }}.data.chat import to_prompt_completion
from {{ cookiecutter.module_name }}.data.data_report import trainable_blocks
from {{ cookiecutter.module_name }}.data.masking import (
    ChatEncoder,
    Lengths,
    common_prefix,
    token_counter,
    tokenizer_counter,
    trainable_tokens,
)
from {{ cookiecutter.module_name }}.document import to_html, to_markdown
from {{ cookiecutter.module_name }}.models.loading import load_tokenizer
from {{ cookiecutter.module_name }}.params import (
    CurateParams,
    Params,
    QualityParams,
    TaskParams,
    load_params,
)
from {{ cookiecutter.module_name }}.paths import (
    BASE_MODEL_DIR,
    CURATE_REPORT,
    DATA_REPORT,
    TRAIN_SPLIT,
    TRAINING_EXAMPLE,
)
from {{ cookiecutter.module_name }}.stages.split import DATA_FILES
from {{ cookiecutter.module_name }}.training.example import (
    ExamplePage,
    example_blocks,
    token_pieces,
    trained_tokens,
    training_example,
    visible,
)
from {{ cookiecutter.module_name }}.training.trainer import build_trainer

SMOKE_PAGE = ExamplePage(TRAINING_EXAMPLE, TRAIN_SPLIT, CURATE_REPORT)

MAX_LENGTH = 96  # train.max_length
MAX_TOKENS = 200  # curate.max_tokens above it: a long row is cut, not quarantined as too_long


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def assistant(text: str) -> dict:
    return {"role": "assistant", "content": text}


# Token counts with the tiny model's ChatML tokenizer (tests assert what each row is for)
CHATS = {
    "single": [user("Hello, my refund for the order is late."), assistant("Sorry! It is sent.")],
    "system": [
        {"role": "system", "content": "Triage the ticket."},
        user("The app shows a login error after the update."),
        assistant('{"category": "technical", "priority": "high"}'),
    ],
    "multi_turn": [
        user("What is the capital of France?"),
        assistant("Paris."),
        user("And the quick brown fox?"),
        assistant("It jumps over the lazy dog."),
    ],
    "cut": [  # longer than max_length: TRL trains on the start of the answer only
        user(
            "My password reset email never arrives and the account page keeps asking me to "
            "verify it again."
        ),
        assistant(
            "Please check the spam folder first, then ask us to resend the reset link to the "
            "address on file."
        ),
    ],
    "prompt_fills": [  # the prompt alone is longer than max_length: nothing left to train
        user(
            "The shipping of my product was billed twice: please refund the second charge, the "
            "order number is in my account and the invoice shows both payments on one page."
        ),
        assistant("Refund issued."),
    ],
}


def raw_lines() -> list[tuple[str, int, bytes]]:
    return [
        ("data/raw/a.jsonl", line, json.dumps({"messages": chat}).encode())
        for line, chat in enumerate(CHATS.values(), start=1)
    ]


def curate(tiny_model_dir: Path) -> CurateResult:
    count = tokenizer_counter(tiny_model_dir)
    return curate_lines(raw_lines(), TaskParams(), CurateParams(), count, MAX_TOKENS, MAX_LENGTH)


def params(**train: object) -> Params:
    """The project fixture's params with train.max_length = MAX_LENGTH (and `train`)."""
    loaded = load_params()
    train = loaded.train.model_copy(update={"max_length": MAX_LENGTH, **train})
    return loaded.model_copy(update={"train": train})


def trained_text(sft) -> str:
    ids, trained = trained_tokens(sft.train_dataset[0])
    return sft.processing_class.decode([i for i, on in zip(ids, trained, strict=True) if on])


def test_trainable_tokens_after_the_cut() -> None:
    assert trainable_tokens(Lengths(total=40, spans=((30, 40),)), max_length=96) == 10
    assert trainable_tokens(Lengths(total=120, spans=((90, 120),)), max_length=96) == 6
    assert trainable_tokens(Lengths(total=120, spans=((100, 120),)), max_length=96) == 0
    assert trainable_tokens(Lengths(total=120, spans=((100, 120),)), max_length=None) == 20
    two_answers = Lengths(total=120, spans=((20, 30), (90, 120)))
    assert trainable_tokens(two_answers, max_length=96) == 10 + 6
    assert trainable_tokens(two_answers, max_length=25) == 5
    assert common_prefix([1, 2, 3], [1, 2, 3, 4]) == 3
    assert common_prefix([1, 2, 9], [1, 2, 3, 4]) == 2
    assert common_prefix([1, 2, 3, 4], [1, 2]) == 2


def test_the_rows_cover_every_case(tiny_model_dir: Path) -> None:
    count = tokenizer_counter(tiny_model_dir)
    lengths = dict(zip(CHATS, count(list(CHATS.values())), strict=True))
    assert all(n.total <= MAX_TOKENS for n in lengths.values())
    assert lengths["cut"].spans[0][0] < MAX_LENGTH < lengths["cut"].total
    assert lengths["prompt_fills"].spans[0][0] >= MAX_LENGTH
    assert len(lengths["multi_turn"].spans) == 2  # train.assistant_turns: all
    assert all(lengths[name].total <= MAX_LENGTH for name in ("single", "system", "multi_turn"))


def test_the_counter_follows_trls_procedure_on_awkward_rows(tiny_model_dir: Path) -> None:
    """The final answer against TRL's own steps (tokenize prompt + generation prompt and the
    whole chat, take their common prefix), every answer against the same steps for each turn
    (ChatML renders each turn the same whatever follows, so the chat up to an answer's end is
    a prefix of the whole): whitespace, special-token text and split characters at the turn
    boundaries, system prompts, several turns."""
    from trl.data_utils import common_prefix_length

    rng = random.Random(3)
    parts = ["Hello", " world", "\n", "\n\n", "  ", "é", "☕", "<|im_end|>", '{"a": 1}', "\t", "x"]

    def text() -> str:
        return "".join(rng.choice(parts) for _ in range(rng.randint(1, 6)))

    chats = []
    for _ in range(200):
        turns = [{"role": "system", "content": text()}] if rng.random() < 0.5 else []
        for _ in range(rng.choice([1, 1, 2, 3])):
            turns += [user(text()), assistant(text())]
        chats.append(turns)
    tokenizer = load_tokenizer(tiny_model_dir)

    def ids(chat: list[dict], **kwargs) -> list[int]:
        return list(tokenizer.apply_chat_template(chat, return_dict=True, **kwargs)["input_ids"])

    last, every = [], []
    for chat in chats:
        whole = ids(chat)
        spans = [
            (
                common_prefix_length(ids(chat[:k], add_generation_prompt=True), whole),
                common_prefix_length(ids(chat[: k + 1]), whole),
            )
            for k, turn in enumerate(chat)
            if turn["role"] == "assistant"
        ]
        last.append(Lengths(len(whole), ((spans[-1][0], len(whole)),)))
        every.append(Lengths(len(whole), tuple(spans)))
    assert token_counter(tokenizer, "last")(chats) == last
    assert token_counter(tokenizer, "all")(chats) == every
    without_offsets = ChatEncoder(tokenizer, "all")  # a tokenizer without token offsets
    without_offsets.with_offsets = None
    assert [Lengths(len(row.ids), row.spans) for row in without_offsets(chats)] == every


@pytest.mark.parametrize("template", ["chatml", "diverging generation prompt"])
def test_curate_counts_what_trl_trains_on(project: Path, template: str) -> None:
    """Parity: each kept row's `trainable_tokens` equals the tokens TRL's processed dataset
    trains on (labels not -100), and the quarantined row is the one TRL drops."""
    if template != "chatml":  # the generation prompt ends in text the whole chat lacks (as
        # Gemma's empty thought block): TRL's completion starts where the two tokenizations part
        tokenizer = load_tokenizer(BASE_MODEL_DIR)
        generation = "'<|im_start|>assistant\n'"
        assert generation in tokenizer.chat_template
        tokenizer.chat_template = tokenizer.chat_template.replace(
            generation, "'<|im_start|>assistant\nthinking...'"
        )
        tokenizer.save_pretrained(BASE_MODEL_DIR)
    result = curate(BASE_MODEL_DIR)
    assert [(r["line"], r["reason"]) for r in result.quarantined] == [(5, "no_trainable_tokens")]
    assert len(result.kept) == 4
    dropped = to_prompt_completion(CHATS["prompt_fills"])
    sft = build_trainer(params(), BASE_MODEL_DIR, [*result.kept, dropped], None, project / "run")
    dataset = sft.train_dataset
    assert len(dataset) == len(result.kept)  # TRL dropped the row curate quarantined
    counts = [sum(trained_tokens(example)[1]) for example in dataset]
    assert counts == [row["trainable_tokens"] for row in result.kept]
    assert all(count > 0 for count in counts)


def test_the_end_of_turn_token_is_trained(project: Path) -> None:
    """The completion TRL trains on ends with the template's end-of-turn token (and the
    newline after it): a model that never learns it does not stop."""
    row = to_prompt_completion(CHATS["single"])
    sft = build_trainer(params(), BASE_MODEL_DIR, [row], None, project / "run")
    ids, trained = trained_tokens(sft.train_dataset[0])
    tokenizer = sft.processing_class
    target = tokenizer.decode([i for i, on in zip(ids, trained, strict=True) if on])
    assert target == "Sorry! It is sent.<|im_end|>\n"
    (lengths,) = tokenizer_counter(BASE_MODEL_DIR)([CHATS["single"]])
    assert trainable_tokens(lengths, MAX_LENGTH) == sum(trained)


def test_a_multi_turn_row_trains_every_answer(project: Path) -> None:
    row = to_prompt_completion(CHATS["multi_turn"])
    sft = build_trainer(params(), BASE_MODEL_DIR, [row], None, project / "run")
    assert trained_text(sft) == "Paris.<|im_end|>\nIt jumps over the lazy dog.<|im_end|>\n"


def test_assistant_turns_last_trains_the_final_answer_only(project: Path) -> None:
    row = to_prompt_completion(CHATS["multi_turn"])
    sft = build_trainer(
        params(assistant_turns="last"), BASE_MODEL_DIR, [row], None, project / "run"
    )
    assert trained_text(sft) == "It jumps over the lazy dog.<|im_end|>\n"
    ids, _ = trained_tokens(sft.train_dataset[0])
    assert "Paris." in sft.processing_class.decode(ids)  # the earlier answer: context
    (lengths,) = tokenizer_counter(BASE_MODEL_DIR, "last")([CHATS["multi_turn"]])
    assert trainable_tokens(lengths, MAX_LENGTH) == sum(trained_tokens(sft.train_dataset[0])[1])


def test_the_report_counts_trainable_tokens(tiny_model_dir: Path) -> None:
    result = curate(tiny_model_dir)
    report = result.report
    stats = report["trainable"]
    counts = sorted(row["trainable_tokens"] for row in result.kept)
    assert stats["rows"] == 4 and stats["min"] == counts[0] and stats["max"] == counts[-1]
    assert stats["trained_tokens"] == sum(counts)
    sequence = sum(min(row["tokens"], MAX_LENGTH) for row in result.kept)
    assert stats["sequence_tokens"] == sequence
    assert stats["trained_share"] == round(sum(counts) / sequence, 4)
    assert stats["multi_turn"] == 1 and stats["truncated"] == 1
    assert report["reasons"] == {"no_trainable_tokens": 1}
    markdown = to_markdown(trainable_blocks(report, DATA_FILES), DATA_REPORT.parent)
    assert f"median {stats['p50']}" in markdown and "`no_trainable_tokens`" in markdown
    assert "(training_example.html)" in markdown


def test_preference_rows_are_not_masked_or_quarantined(tiny_model_dir: Path) -> None:
    pair = {"prompt": CHATS["prompt_fills"][0]["content"], "chosen": "Yes.", "rejected": "No."}
    rows = [("data/raw/p.jsonl", 1, json.dumps(pair).encode())]
    count = tokenizer_counter(tiny_model_dir)
    cfg = CurateParams(quality=QualityParams(scripts=["latin"]))  # one row: no majority to read
    result = curate_lines(rows, TaskParams(), cfg, count, MAX_TOKENS, MAX_LENGTH)
    assert len(result.preferences) == 1 and result.decisions.trainable == {}


# ------------------------------------------------------------------ the training example


def test_the_example_page_shows_what_trl_trains_on(project: Path) -> None:
    rows = [to_prompt_completion(CHATS[name]) for name in ("multi_turn", "single")]
    rows[0]["source"] = "data/raw/a.jsonl:3"
    sft = build_trainer(params(), BASE_MODEL_DIR, rows, None, project / "run")
    example = training_example(sft, rows, MAX_LENGTH, tokenizer_counter(BASE_MODEL_DIR))
    assert example is not None and example.row is rows[0] and example.matches is True
    assert example.summary()["source"] == "data/raw/a.jsonl:3"
    tokenizer = sft.processing_class
    page = to_html(example_blocks(tokenizer, example, SMOKE_PAGE), "example")
    assert page.count('<span class="t"') == example.n_trained
    assert page.count('<span class="c"') == len(example.ids) - example.n_trained
    prompt = tokenizer.apply_chat_template(
        rows[0]["prompt"], tokenize=False, add_generation_prompt=True
    )
    assert f'<pre class="tokens">{visible(prompt)}</pre>' in page
    assert "every assistant turn is trained" in page
    assert "&lt;|im_end|&gt;" in page.rsplit('<span class="c"', 1)[1]  # the last is trained


def test_token_pieces_put_a_split_character_in_one_piece(tiny_model_dir: Path) -> None:
    tokenizer = load_tokenizer(tiny_model_dir)
    ids = tokenizer("Café ☕ crème<|im_end|>", add_special_tokens=False)["input_ids"]
    pieces = token_pieces(tokenizer, ids)
    assert len(pieces) == len(ids)
    assert "".join(pieces) == "Café ☕ crème<|im_end|>"
    assert "\ufffd" not in "".join(pieces) and "" in pieces  # ☕ spans several byte tokens


def test_trained_tokens_reads_labels_masks_and_packed_rows() -> None:
    labels = {"input_ids": [1, 2, 3, 4, 5], "labels": [-100, 2, 3, -100, 5]}
    assert trained_tokens(labels) == ([1, 2, 3, 4, 5], [False, True, True, False, True])
    mask = {"input_ids": [1, 2, 3], "completion_mask": [0, 0, 1]}  # TRL before 1.0
    assert trained_tokens(mask) == ([1, 2, 3], [False, False, True])
    packed = labels | {"seq_lengths": [3, 2]}
    assert trained_tokens(packed) == ([1, 2, 3], [False, True, True])
