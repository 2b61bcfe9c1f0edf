"""The train/eval boundary: the prompt eval generates from is token-for-token the prompt the
trainer trained on.

The trainer is built exactly as the train stage builds it (`trainer.build_trainer`), so a change
to the chat template, to TRL's tokenization or to `chat.prompt_token_ids` that makes the
two disagree fails here instead of silently costing accuracy at eval time.
"""

from pathlib import Path

import pytest
import torch

from {{ cookiecutter.module_name }}.data.chat import (
    prompt_token_ids,
    target_text,
    to_prompt_completion,
    user_prompt,
)
from {{ cookiecutter.module_name }}.evaluation import generation
from {{ cookiecutter.module_name }}.export.merged import write_merged
from {{ cookiecutter.module_name }}.io import read_jsonl
from {{ cookiecutter.module_name }}.models.loading import load_base_model, load_tokenizer
from {{ cookiecutter.module_name }}.params import load_params
from {{ cookiecutter.module_name }}.paths import BASE_MODEL_DIR, TRAIN_SPLIT
from {{ cookiecutter.module_name }}.selection.export import export
from {{ cookiecutter.module_name }}.training.trainer import build_trainer


def completion_mask(example: dict) -> list[int]:
    """1 for the tokens the loss is computed on. TRL keeps a `completion_mask` column in some
    versions and folds it into `labels` (-100 = no loss) in others."""
    if "completion_mask" in example:
        return list(example["completion_mask"])
    return [int(label != -100) for label in example["labels"]]


@pytest.fixture
def trained_on(project: Path, tmp_path: Path):
    """(tokenizer, rows, tokenized training examples) from the train stage's own trainer."""
    rows = read_jsonl(TRAIN_SPLIT)[:4]
    trainer = build_trainer(
        load_params(), BASE_MODEL_DIR, rows, None, tmp_path / "out", max_steps=1
    )
    dataset = trainer.train_dataset
    # every row survives tokenization (none is dropped as fully masked), in order
    assert len(dataset) == len(rows)
    return trainer.processing_class, rows, [dataset[i] for i in range(len(dataset))]


def training_prefix(example: dict) -> tuple[list[int], list[int]]:
    """(ids before the first completion token, ids from it on)."""
    mask = completion_mask(example)
    assert 1 in mask, "the example has no completion tokens (truncated away?)"
    first = mask.index(1)
    assert all(mask[first:]), "completion tokens must be contiguous up to the end"
    ids = list(example["input_ids"])
    return ids[:first], ids[first:]


def test_eval_prompt_is_exactly_the_training_prefix(trained_on) -> None:
    tokenizer, rows, examples = trained_on
    for row, example in zip(rows, examples, strict=True):
        prefix, completion = training_prefix(example)
        assert prompt_token_ids(tokenizer, row["prompt"]) == prefix
        # the completion starts right after the prompt: it is the target's first tokens
        target = tokenizer(target_text(row), add_special_tokens=False)["input_ids"]
        assert completion[: len(target)] == target[: len(completion)]
        assert tokenizer.decode(completion).startswith(target_text(row)[:20])


def test_the_end_of_turn_token_after_the_answer_is_trained(project: Path, tmp_path: Path) -> None:
    """The model learns to stop: the end-of-turn token right after the target is one of the
    trained (completion) tokens, and it is one of eval's stop tokens. (max_length is raised so
    no row is truncated: in the pipeline curate quarantines rows longer than it.)"""
    params = load_params()
    long_rows = params.train.model_copy(update={"max_length": 4096})
    params = params.model_copy(update={"train": long_rows})
    rows = read_jsonl(TRAIN_SPLIT)[:4]
    trainer = build_trainer(params, BASE_MODEL_DIR, rows, None, tmp_path / "out", max_steps=1)
    tokenizer = trainer.processing_class
    examples = [trainer.train_dataset[i] for i in range(len(rows))]
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert end_of_turn in generation.stop_token_ids(
        load_base_model(BASE_MODEL_DIR).generation_config, tokenizer
    )
    for row, example in zip(rows, examples, strict=True):
        _, completion = training_prefix(example)
        target = tokenizer(target_text(row), add_special_tokens=False)["input_ids"]
        assert completion[: len(target)] == target
        assert completion[len(target)] == end_of_turn, tokenizer.decode(completion[-4:])


def test_the_exported_model_renders_the_training_prompt(trained_on, tmp_path: Path) -> None:
    """The exported model (adapter dir and merged model) carries the chat template training
    used: a prompt rendered with the exported tokenizer is the training prefix, token for
    token, and its generation config stops at the end-of-turn token."""
    from transformers import AutoTokenizer, GenerationConfig

    tokenizer, rows, examples = trained_on
    checkpoint = tmp_path / "checkpoint"
    trainer = build_trainer(
        load_params(), BASE_MODEL_DIR, rows, None, tmp_path / "run", max_steps=1
    )
    trainer.save_model(str(checkpoint))
    export(checkpoint, tmp_path / "selected", {"checkpoint": "checkpoint"})
    merged = write_merged(tmp_path / "selected", tmp_path / "merged", "bf16", BASE_MODEL_DIR)
    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    for exported in (tmp_path / "selected", merged):
        exported_tokenizer = AutoTokenizer.from_pretrained(exported, trust_remote_code=False)
        for row, example in zip(rows, examples, strict=True):
            prefix, _ = training_prefix(example)
            assert prompt_token_ids(exported_tokenizer, row["prompt"]) == prefix, exported
    config = GenerationConfig.from_pretrained(merged)
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    assert end_of_turn in eos


def test_prefix_ends_with_the_generation_prompt(trained_on) -> None:
    tokenizer, _, examples = trained_on
    prefix, _ = training_prefix(examples[0])
    assert tokenizer.decode(prefix).endswith("<|im_start|>assistant\n")


def test_a_prompt_without_the_generation_prompt_is_caught(trained_on) -> None:
    """Negative control: a plausible formatting slip does not pass the boundary check."""
    tokenizer, rows, examples = trained_on
    prefix, _ = training_prefix(examples[0])
    prompt = rows[0]["prompt"]
    without = tokenizer.apply_chat_template(
        prompt, tokenize=True, add_generation_prompt=False, return_dict=True
    )["input_ids"]
    assert list(without) != prefix
    assert prefix[: len(without)] == list(without)  # it is a strict prefix: close, yet wrong


def test_a_prompt_with_a_trailing_space_is_caught(trained_on) -> None:
    tokenizer, rows, examples = trained_on
    prefix, _ = training_prefix(examples[0])
    text = tokenizer.apply_chat_template(
        rows[0]["prompt"], tokenize=False, add_generation_prompt=True
    )
    # the rendered text tokenizes to the prefix, and one extra space breaks the match
    assert tokenizer(text, add_special_tokens=False)["input_ids"] == prefix
    assert tokenizer(text + " ", add_special_tokens=False)["input_ids"] != prefix


def test_to_prompt_completion_splits_off_the_last_turn() -> None:
    messages = [
        {"role": "system", "content": "s"},
        {"role": "user", "content": "u"},
        {"role": "assistant", "content": "a"},
    ]
    row = to_prompt_completion(messages)
    assert row == {"prompt": messages[:2], "completion": messages[2:]}
    assert target_text(row) == "a"
    assert user_prompt("hi") == [{"role": "user", "content": "hi"}]


# --------------------------------------------------------------------------- generation


def test_left_pad_pads_on_the_left_with_zero_attention() -> None:
    input_ids, attention = generation.left_pad([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert input_ids.tolist() == [[5, 6, 7], [0, 0, 8], [0, 9, 10]]
    assert attention.tolist() == [[1, 1, 1], [0, 0, 1], [0, 1, 1]]
    assert input_ids.dtype == attention.dtype == torch.long


def requests_for(tokenizer, prompts: list, budget: int = 5) -> list[generation.Request]:
    return [generation.Request(tuple(prompt_token_ids(tokenizer, p)), budget) for p in prompts]


def test_generate_feeds_exactly_the_prompt_token_ids(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    model = load_base_model(BASE_MODEL_DIR).eval()
    rows = read_jsonl(TRAIN_SPLIT)[:3]
    prompts = [rows[0]["prompt"], user_prompt("Hi"), rows[1]["prompt"], user_prompt("Paris?")]
    fed: list[list[int]] = []
    calls: list[list[int]] = []

    def fake_decode(model, input_ids, attention, past, budgets, stops):
        calls.append(budgets)
        assert input_ids.shape == attention.shape
        assert tokenizer.eos_token_id in stops
        answers = []
        for ids, mask in zip(input_ids.tolist(), attention.tolist(), strict=True):
            # padding (mask 0) sits left of each row's own tokens, after any shared prefix
            assert mask[-1] == 1
            kept = [token for token, keep in zip(ids, mask, strict=True) if keep]
            fed.append(kept)
            # answer with the unpadded prompt length, so outputs can be matched to prompts
            answers.append(tokenizer(str(len(kept)), add_special_tokens=False)["input_ids"])
        return answers

    monkeypatch.setattr(generation, "greedy_decode", fake_decode)
    requests = requests_for(tokenizer, prompts)
    outputs = generation.HFGenerator(model, tokenizer, batch_size=2)(requests, "test")

    expected = [list(request.prompt_ids) for request in requests]
    assert sorted(fed) == sorted(expected)
    assert outputs == [str(len(ids)) for ids in expected]
    assert calls == [[5, 5], [5, 5]]  # 4 prompts, batch size 2


def test_greedy_decode_matches_transformers_generate(project: Path) -> None:
    """Dropping finished rows from the batch changes no token: each row equals
    `model.generate` run on it alone with the same budget."""
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    model = load_base_model(BASE_MODEL_DIR).eval()
    prompts = [row["prompt"] for row in read_jsonl(TRAIN_SPLIT)[:3]] + [user_prompt("Hi")]
    requests = [
        generation.Request(tuple(prompt_token_ids(tokenizer, p)), budget)
        for p, budget in zip(prompts, [3, 7, 1, 5], strict=True)
    ]
    generator = generation.HFGenerator(model, tokenizer, batch_size=4)
    input_ids, attention, shared = generator.batch_inputs([r.prompt_ids for r in requests])
    past = generator.batch_cache([r.prompt_ids for r in requests], shared)
    budgets = [r.max_new_tokens for r in requests]
    batched = generation.greedy_decode(model, input_ids, attention, past, budgets, generator.stops)
    for request, tokens in zip(requests, batched, strict=True):
        alone = model.generate(
            input_ids=torch.tensor([request.prompt_ids]),
            max_new_tokens=request.max_new_tokens,
            do_sample=False,
            eos_token_id=generator.stops,
            pad_token_id=generator.pad_id,
        )[0, len(request.prompt_ids) :].tolist()
        assert tokens == alone
        assert len(tokens) <= request.max_new_tokens


def test_shared_prefix_length() -> None:
    assert generation.shared_prefix_length([[1, 2, 3, 4], [1, 2, 3, 5, 6]]) == 3
    # every prompt keeps at least one token of its own
    assert generation.shared_prefix_length([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert generation.shared_prefix_length([[7, 2], [1, 2]]) == 0


@torch.inference_mode()
def test_prefix_sharing_gives_the_same_next_token_scores(project: Path) -> None:
    """The shared system prompt's KV cache, copied to every row with the rows' own tokens
    padded after it, must give the logits that each row gives run alone."""
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    model = load_base_model(BASE_MODEL_DIR).eval()
    prompts = [prompt_token_ids(tokenizer, row["prompt"]) for row in read_jsonl(TRAIN_SPLIT)[:4]]
    generator = generation.HFGenerator(model, tokenizer, batch_size=4)
    input_ids, attention, shared = generator.batch_inputs(prompts)
    assert shared >= generation.MIN_SHARED_PREFIX
    assert len({len(ids) for ids in prompts}) > 1  # so there is padding in the middle
    past = generator.batch_cache(prompts, shared)
    positions = (attention.cumsum(-1) - 1).clamp(min=0)
    batched = model(
        input_ids=input_ids[:, shared:],
        attention_mask=attention,
        position_ids=positions[:, shared:],
        past_key_values=past,
    ).logits[:, -1]
    for row, ids in enumerate(prompts):
        alone = model(input_ids=torch.tensor([ids])).logits[0, -1]
        torch.testing.assert_close(batched[row], alone, atol=1e-4, rtol=1e-4)


def test_each_request_stops_at_its_own_budget(project: Path) -> None:
    """Greedy output is prefix-consistent: a 2-token request batched with 8-token ones gives
    the first 2 tokens of what it would give with 8."""
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    model = load_base_model(BASE_MODEL_DIR).eval()
    prompts = [user_prompt("Hi"), user_prompt("What is 2 + 2?"), user_prompt("Name a colour.")]
    long = requests_for(tokenizer, prompts, budget=8)
    mixed = [long[0], generation.Request(long[1].prompt_ids, 2), long[2]]
    generator = generation.HFGenerator(model, tokenizer, batch_size=3)
    full, short = generator(long, "long"), generator(mixed, "mixed")
    assert short[0] == full[0] and short[2] == full[2]
    full_ids = tokenizer(full[1], add_special_tokens=False)["input_ids"]
    short_ids = tokenizer(short[1], add_special_tokens=False)["input_ids"]
    assert len(short_ids) <= 2
    assert full_ids[: len(short_ids)] == short_ids


def test_generate_runs_on_the_tiny_model(project: Path) -> None:
    tokenizer = load_tokenizer(BASE_MODEL_DIR)
    model = load_base_model(BASE_MODEL_DIR).eval()
    requests = requests_for(tokenizer, [user_prompt("Hi"), user_prompt("What is 2 + 2?")], 4)
    outputs = generation.HFGenerator(model, tokenizer, batch_size=2)(requests, "tiny")
    assert len(outputs) == 2
    assert all(isinstance(out, str) for out in outputs)
