"""How a row becomes model input. Training (TRL) and eval both go through these functions, so
the prompt the model sees at eval is token-for-token the prompt it was trained on."""

from typing import Any

Messages = list[dict[str, str]]


def to_prompt_completion(messages: Messages) -> dict[str, Messages]:
    """Split a chat whose last turn is the assistant's into TRL's conversational
    prompt/completion form (loss is then computed on the completion only)."""
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def target_text(row: dict[str, Any]) -> str:
    return row["completion"][-1]["content"]


def prompt_token_ids(tokenizer, prompt: Messages) -> list[int]:
    """Token ids of a prompt with the generation prompt appended, exactly as TRL's SFTTrainer
    tokenizes the prompt part of a conversational prompt/completion row."""
    encoded = tokenizer.apply_chat_template(
        prompt, tokenize=True, add_generation_prompt=True, return_dict=True
    )
    return list(encoded["input_ids"])


def user_prompt(text: str) -> Messages:
    """A one-turn prompt for the general eval suites (the model's default system prompt applies)."""
    return [{"role": "user", "content": text}]


def split_system(prompt: Messages) -> tuple[Messages, Messages]:
    """(leading system turns, the rest)."""
    start = next((i for i, turn in enumerate(prompt) if turn["role"] != "system"), len(prompt))
    return prompt[:start], prompt[start:]


def fewshot_prompt(prompt: Messages, examples: list[dict[str, Any]]) -> Messages:
    """The prompt with solved examples as earlier turns of the same chat: the row's system
    prompt, then each example's user turns and answer, then the row's own turns. Every
    prompt of a run starts with the same examples, so generation computes them once."""
    system, turns = split_system(prompt)
    shots = [
        turn
        for example in examples
        for turn in (*split_system(example["prompt"])[1], *example["completion"])
    ]
    return [*system, *shots, *turns]
