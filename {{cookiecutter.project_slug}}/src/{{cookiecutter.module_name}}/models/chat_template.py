"""What a family's chat template can render: whether it has a system role, and the folding that
gives one to a template without (Gemma's, Mistral v0.3's)."""

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
