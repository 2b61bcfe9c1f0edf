"""An Ollama Modelfile next to an exported GGUF: the model's chat template in Ollama's
Go-template syntax, its default system prompt, its stop strings and greedy defaults.

The template is never guessed: the tokenizer's own Jinja chat template is rendered on sample
conversations and compared with what Ollama would build from the Modelfile (render_go_template
runs the exact Go-template subset written here); a family without a Go template here, or any
difference, is a StageError rather than a Modelfile that prompts the model differently."""

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import StageError
from .gguf import chat_metadata, load_tokenizer

MODELFILE = "Modelfile"
# ChatML (SmolLM2's chat format): every turn `<|im_start|>role\n...<|im_end|>\n`, then the
# generation prompt. Ollama puts the Modelfile's SYSTEM first when a chat does not start with a
# system turn, as SmolLM2's Jinja template does with its default system prompt.
CHATML_TEMPLATE = (
    "{{- range .Messages }}<|im_start|>{{ .Role }}\n"
    "{{ .Content }}<|im_end|>\n"
    "{{ end }}<|im_start|>assistant\n"
)
CHATML_START, CHATML_END = "<|im_start|>{role}\n", "<|im_end|>\n"
PROBE = "Probe question 1?"
SAMPLE_CONVERSATIONS = (
    [{"role": "user", "content": "What is the capital of France?"}],
    [
        {"role": "system", "content": "You sort support tickets."},
        {"role": "user", "content": "I was charged twice.\nPlease refund one."},
    ],
    [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "Reset my password."},
    ],
)
# Greedy, as the pipeline's eval decodes: temperature 0 picks the most likely token, and
# Ollama's default repeat_penalty (1.1) would change which one that is.
GREEDY_PARAMETERS = {"temperature": "0", "repeat_penalty": "1"}
GO_ACTION = re.compile(r"\{\{(- )?(.*?)( -)?\}\}", re.S)
GO_SPACE = " \t\r\n"


@dataclass(frozen=True)
class OllamaChat:
    """The chat part of a Modelfile."""

    template: str
    system: str | None
    """The default system prompt the Jinja template adds to a chat without one."""
    stop: tuple[str, ...]


def go_tokens(template: str) -> list[tuple[str, str]]:
    """("text", ...) and ("action", ...) pieces, with `{{- ` / ` -}}` trimming applied."""
    pieces: list[tuple[str, str]] = []
    position, trim_next = 0, False
    for match in GO_ACTION.finditer(template):
        text = template[position : match.start()]
        text = text.lstrip(GO_SPACE) if trim_next else text
        pieces.append(("text", text.rstrip(GO_SPACE) if match.group(1) else text))
        pieces.append(("action", match.group(2).strip()))
        position, trim_next = match.end(), bool(match.group(3))
    tail = template[position:]
    pieces.append(("text", tail.lstrip(GO_SPACE) if trim_next else tail))
    return pieces


def block_end(pieces: list[tuple[str, str]], start: int) -> int:
    """The index of the `end` closing the block whose body starts at `start`."""
    depth = 0
    for index in range(start, len(pieces)):
        kind, value = pieces[index]
        if kind == "action" and value.startswith("range "):
            depth += 1
        elif kind == "action" and value == "end":
            if depth == 0:
                return index
            depth -= 1
    raise ValueError("Go template: `range` without `end`")


def render_pieces(pieces: list[tuple[str, str]], start: int, end: int, dot: dict) -> str:
    out, index = [], start
    while index < end:
        kind, value = pieces[index]
        if kind == "text":
            out.append(value)
        elif value.startswith("range ."):
            close = block_end(pieces, index + 1)
            for item in dot[value.removeprefix("range .")]:
                out.append(render_pieces(pieces, index + 1, close, item))
            index = close
        elif re.fullmatch(r"\.\w+", value):
            out.append(str(dot[value[1:]]))
        else:
            raise ValueError(f"Go template: {{{{ {value} }}}} is outside the rendered subset")
        index += 1
    return "".join(out)


def render_go_template(template: str, data: dict) -> str:
    """Render the subset of Go's text/template this module writes: text, `{{ .Field }}`,
    `{{ range .List }}...{{ end }}` and the `{{- ` / ` -}}` whitespace trims."""
    pieces = go_tokens(template)
    return render_pieces(pieces, 0, len(pieces), data)


def ollama_prompt(chat: OllamaChat, messages: list[dict[str, str]]) -> str:
    """The prompt Ollama's chat endpoint builds: the Modelfile's SYSTEM first unless the chat
    starts with a system turn, consecutive turns of one role joined by a blank line, then the
    TEMPLATE executed on them."""
    if chat.system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": chat.system}, *messages]
    collated: list[dict[str, str]] = []
    for message in messages:
        if collated and collated[-1]["Role"] == message["role"]:
            collated[-1]["Content"] += "\n\n" + message["content"]
        else:
            collated.append({"Role": message["role"], "Content": message["content"]})
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    return render_go_template(chat.template, {"System": system, "Messages": collated})


def jinja_prompt(tokenizer, messages: list[dict[str, str]]) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def chatml_system(tokenizer) -> str | None:
    """The default system prompt of a ChatML template (None: it adds none), or a StageError
    when the template is not ChatML."""
    rendered = jinja_prompt(tokenizer, [{"role": "user", "content": PROBE}])
    user, assistant = (CHATML_START.format(role=role) for role in ("user", "assistant"))
    head = rendered.removesuffix(user + PROBE + CHATML_END + assistant)
    start = CHATML_START.format(role="system")
    if head == rendered or (head and not (head.startswith(start) and head.endswith(CHATML_END))):
        raise StageError(
            "Ollama export: the chat template is not ChatML (the one family with a Go template "
            f"here); it renders a one-turn chat as {rendered[:160]!r}. Write the Modelfile's "
            "TEMPLATE by hand"
        )
    return head[len(start) : -len(CHATML_END)] if head else None


def ollama_chat(tokenizer, stop: tuple[str, ...]) -> OllamaChat:
    """The Modelfile's chat settings, checked: Ollama's prompt for every sample conversation
    equals the tokenizer's own chat template's."""
    chat = OllamaChat(template=CHATML_TEMPLATE, system=chatml_system(tokenizer), stop=stop)
    for messages in SAMPLE_CONVERSATIONS:
        expected, got = jinja_prompt(tokenizer, messages), ollama_prompt(chat, messages)
        if got != expected:
            raise StageError(
                "Ollama export: the Modelfile's TEMPLATE would prompt the model differently "
                f"from its chat template for {[m['role'] for m in messages]}: Jinja gives "
                f"{expected!r}, the Modelfile {got!r}. Write the TEMPLATE by hand"
            )
    return chat


def triple_quoted(value: str) -> str:
    if '"""' in value:
        raise StageError(
            f'Ollama export: {value[:60]!r} contains """, which a Modelfile cannot quote'
        )
    return f'"""{value}"""'


def modelfile_text(gguf_name: str, chat: OllamaChat) -> str:
    lines = [
        f"# Ollama: `ollama create NAME -f {MODELFILE}` here, then `ollama run NAME`.",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {triple_quoted(chat.template)}",
    ]
    if chat.system:
        lines.append(f"SYSTEM {triple_quoted(chat.system)}")
    lines.append("# Greedy decoding with no repeat penalty, as the pipeline's eval generates.")
    lines += [f"PARAMETER {name} {value}" for name, value in GREEDY_PARAMETERS.items()]
    for stop in chat.stop:
        if '"' in stop:
            raise StageError(f"Ollama export: stop string {stop!r} contains a double quote")
        lines.append(f'PARAMETER stop "{stop}"')
    return "\n".join(lines) + "\n"


def write_modelfile(gguf_path: Path, model_dir: Path) -> Path:
    """Write `Modelfile` next to `gguf_path` for the model (and tokenizer) in `model_dir`."""
    tokenizer = load_tokenizer(model_dir)
    meta = chat_metadata(model_dir, tokenizer)
    chat = ollama_chat(tokenizer, meta.stop)
    path = gguf_path.parent / MODELFILE
    path.write_text(modelfile_text(gguf_path.name, chat))
    return path
