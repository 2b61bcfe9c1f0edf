"""How a row becomes model input. Training (TRL) and eval both go through these functions, so
the prompt the model sees at eval is token-for-token the prompt it was trained on."""

from typing import Any

Messages = list[dict[str, str]]

SYSTEM_FOLDING = (
    "{#- system prompt folded into the first user turn: the base's template has no system role #}\n"
    "{%- if messages and messages[0]['role'] == 'system' and messages | length > 1 %}\n"
    "{%- set messages = [{'role': messages[1]['role'], 'content': messages[0]['content'] + "
    "'\\n\\n' + messages[1]['content']}] + messages[2:] %}\n"
    "{%- endif %}"
)
"""Put before a chat template that has no system role: a leading system turn becomes the start
of the next turn, `system + "\\n\\n" + user` (what Gemma 3's own template does). Training,
eval and every export render through it, so they all fold the same way."""
SYSTEM_PROBE = "Answer in French."


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


def has_system_role(tokenizer) -> bool:
    """The chat template renders a system turn, in a prompt and in a chat with its answer: it
    neither raises on one (Gemma 2's "System role not supported") nor drops its text (Mistral
    v0.3's keeps it only while the user's turn is the last)."""
    from jinja2 import TemplateError

    system = {"role": "system", "content": SYSTEM_PROBE}
    prompt = [system, {"role": "user", "content": "Hello"}]
    chat = [*prompt, {"role": "assistant", "content": "Bonjour"}]
    try:
        texts = [
            tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True),
            tokenizer.apply_chat_template(chat, tokenize=False),
        ]
    except TemplateError:
        return False
    return all(SYSTEM_PROBE in text for text in texts)


def folds_system(tokenizer) -> bool:
    """The tokenizer's chat template folds system prompts into the first user turn."""
    template = tokenizer.chat_template
    return isinstance(template, str) and template.startswith(SYSTEM_FOLDING)


def fold_system_if_needed(tokenizer) -> bool:
    """Give a tokenizer whose chat template has no system role SYSTEM_FOLDING in front of its
    template (in place); True when it folds system prompts afterwards."""
    if folds_system(tokenizer) or not isinstance(tokenizer.chat_template, str):
        return folds_system(tokenizer)
    if not has_system_role(tokenizer):
        tokenizer.chat_template = SYSTEM_FOLDING + tokenizer.chat_template
    return folds_system(tokenizer)
