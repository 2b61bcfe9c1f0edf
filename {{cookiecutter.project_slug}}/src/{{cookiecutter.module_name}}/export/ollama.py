"""An Ollama Modelfile next to an exported GGUF: the model's chat template in Ollama's
Go-template syntax, its default system prompt, its stop tokens and greedy defaults.

The template is never guessed: one Go template per chat format (ChatML for SmolLM2 and Qwen,
Llama 3, Gemma, Phi-3, Mistral, written after Ollama's own in its template/ folder) is tried in
turn, and the one used is the one with which Ollama's prompt equals the tokenizer's own Jinja
chat template on sample conversations (system + user, multi-turn, no system), rendered by
render_go_template, which runs the Go text/template subset these templates use. None matching
is a StageError rather than a Modelfile that prompts the model differently.

The BOS: a Jinja template writes it as text; llama.cpp (under Ollama) adds it from the GGUF's
add_bos_token instead, so where the tokenizer adds a BOS the Go template leaves it out."""

from dataclasses import dataclass
from pathlib import Path

from ..errors import StageError
from .gguf import ChatMetadata, chat_metadata, load_tokenizer
from .go_template import GoTemplateError, render_go_template

MODELFILE = "Modelfile"
PROBE = "Probe question 1?"
SYSTEM_PROBE = "Probe system 2."
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
    [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "Refund?"},
        {"role": "assistant", "content": '{"category": "billing"}'},
        {"role": "user", "content": "And shipping?"},
    ],
)
# Greedy, as the pipeline's eval decodes: temperature 0 picks the most likely token, and
# Ollama's default repeat_penalty (1.1) would change which one that is.
GREEDY_PARAMETERS = {"temperature": "0", "repeat_penalty": "1"}

# ChatML (SmolLM2, Qwen2/2.5/3): every turn `<|im_start|>role\n...<|im_end|>\n`. A default
# system prompt (SmolLM2's, Qwen2.5's) is the Modelfile's SYSTEM: Ollama adds it as the first
# turn of a chat without one.
CHATML = """\
{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
# Llama 3: a header per turn, `<|eot_id|>` after each.
LLAMA3 = """\
{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""
# Llama 3.1-3.3: a system turn always, opening with a fixed text (the knowledge cut-off and
# date lines, PREAMBLE: read from the Jinja template when exporting).
LLAMA31 = """\
<|start_header_id|>system<|end_header_id|>

PREAMBLE{{ .System }}<|eot_id|>
{{- range .Messages }}
{{- if ne .Role "system" }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""
# Gemma 2/3: user and model turns; a system prompt opens the first user turn, followed by a
# blank line (Gemma 3's template; Gemma 2's, which refuses a system turn, is wrapped so).
GEMMA = """\
{{- $first := true }}
{{- range .Messages }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if and $first $.System }}{{ $.System }}

{{ end }}{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- if ne .Role "system" }}{{ $first = false }}{{ end }}
{{- end }}<start_of_turn>model
"""
# Phi-3: `<|role|>\n...<|end|>\n` per turn.
PHI3 = """\
{{- range .Messages }}<|{{ .Role }}|>
{{ .Content }}<|end|>
{{ end }}<|assistant|>
"""
# Mistral v0.3: `[INST] ...[/INST]` and ` answer</s>`. Its template keeps a system prompt only
# while the last user turn is the one it opens, so training folds it into the first user turn
# instead (data/chat.py SYSTEM_FOLDING), as here; MISTRAL_LAST is the template unfolded.
MISTRAL = """\
{{- $first := true }}
{{- range .Messages }}
{{- if eq .Role "user" }}[INST] {{ if and $first $.System }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- if ne .Role "system" }}{{ $first = false }}{{ end }}
{{- end }}"""
MISTRAL_LAST = """\
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 }}
{{- if eq .Role "user" }}[INST] {{ if and $.System $last }}{{ $.System }}

{{ end }}{{ .Content }}[/INST]
{{- else if eq .Role "assistant" }} {{ .Content }}</s>
{{- end }}
{{- end }}"""
# Mistral v0.1/v0.2: `[INST] ... [/INST]`, answers with no leading space; their template refuses
# a system turn, so it is folded into the first user turn.
MISTRAL_V1 = MISTRAL.replace("{{ .Content }}[/INST]", "{{ .Content }} [/INST]").replace(
    " {{ .Content }}</s>", "{{ .Content }}</s>"
)


@dataclass(frozen=True)
class OllamaChat:
    """The chat part of a Modelfile."""

    template: str
    system: str | None
    """The default system prompt the Jinja template adds to a chat without one."""
    stop: tuple[str, ...]
    family: str = ""
    bos: str = ""
    """The BOS text llama.cpp adds in front of the prompt ("" where the tokenizer adds none)."""
    unchecked: tuple[str, ...] = ()
    """Sample conversations the Jinja template refuses (a system turn Gemma 2 rejects)."""


# --- Ollama's prompt and the Jinja template's ----------------------------------------------


def ollama_prompt(chat: OllamaChat, messages: list[dict[str, str]]) -> str:
    """The text llama.cpp tokenizes for Ollama's chat endpoint: the BOS it adds, then the
    TEMPLATE executed as Ollama does (the Modelfile's SYSTEM first unless the chat starts with
    a system turn; consecutive turns of one role joined by a blank line; .System all system
    turns' text)."""
    if chat.system and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": chat.system}, *messages]
    collated: list[dict[str, str]] = []
    for message in messages:
        if collated and collated[-1]["Role"] == message["role"]:
            collated[-1]["Content"] += "\n\n" + message["content"]
        else:
            collated.append({"Role": message["role"], "Content": message["content"]})
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    data = {"System": system, "Messages": collated, "Response": "", "Tools": None}
    return chat.bos + render_go_template(chat.template, data)


def jinja_prompt(tokenizer, messages: list[dict[str, str]]) -> str | None:
    """The tokenizer's chat template's prompt, or None where the template refuses `messages`
    (raise_exception, as Gemma 2's on a system turn)."""
    from jinja2 import TemplateError

    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except TemplateError:
        return None


def default_system(tokenizer) -> str | None:
    """The system prompt the Jinja template adds to a chat without one: the text with which a
    one-turn chat renders as one with a system turn (None: it adds none)."""
    user = [{"role": "user", "content": PROBE}]
    alone = jinja_prompt(tokenizer, user)
    marked = jinja_prompt(tokenizer, [{"role": "system", "content": SYSTEM_PROBE}, *user])
    if alone is None or marked is None or marked.count(SYSTEM_PROBE) != 1:
        return None
    head, tail = marked.split(SYSTEM_PROBE)
    fits = alone.startswith(head) and alone.endswith(tail)
    if not fits or len(alone) < len(head) + len(tail):
        return None
    return alone[len(head) : len(alone) - len(tail)] or None


def llama31_template(tokenizer, bos: str) -> str | None:
    """LLAMA31 with the text the Jinja template opens every system turn with, or None."""
    header = "<|start_header_id|>system<|end_header_id|>\n\n"
    user = [{"role": "user", "content": PROBE}]
    marked = jinja_prompt(tokenizer, [{"role": "system", "content": SYSTEM_PROBE}, *user])
    if marked is None or not marked.startswith(bos + header) or SYSTEM_PROBE not in marked:
        return None
    preamble = marked[len(bos + header) : marked.index(SYSTEM_PROBE)]
    if "{{" in preamble or "<|" in preamble:
        return None
    return LLAMA31.replace("PREAMBLE", preamble)


def candidate_templates(tokenizer, bos: str) -> dict[str, str]:
    candidates = {"chatml": CHATML, "llama3": LLAMA3}
    if llama31 := llama31_template(tokenizer, bos):
        candidates["llama3.1"] = llama31
    return candidates | {
        "gemma": GEMMA,
        "phi3": PHI3,
        "mistral": MISTRAL,
        "mistral-last-user": MISTRAL_LAST,
        "mistral-v1": MISTRAL_V1,
    }


def roles_of(messages: list[dict[str, str]]) -> str:
    return "+".join(m["role"] for m in messages)


def parity_differences(chat: OllamaChat, expected: list[str | None]) -> list[str]:
    """How Ollama's prompt differs, on each sample conversation, from the Jinja template's
    (`expected`, in SAMPLE_CONVERSATIONS order; None where the template refuses the sample)."""
    differences = []
    for messages, prompt in zip(SAMPLE_CONVERSATIONS, expected, strict=True):
        if prompt is None:
            continue
        try:
            got = ollama_prompt(chat, messages)
        except GoTemplateError as error:
            got = f"<{error}>"
        if got != prompt:
            differences.append(
                f"{roles_of(messages)}: Jinja gives {prompt!r}, the Modelfile {got!r}"
            )
    if all(prompt is None for prompt in expected):
        differences.append("the chat template refuses every sample conversation")
    return differences


def ollama_chat(tokenizer, meta: ChatMetadata) -> OllamaChat:
    """The Modelfile's chat settings: the first Go template with which Ollama's prompt equals
    the tokenizer's own chat template's on every sample conversation it accepts (rendered
    once, compared with each candidate)."""
    bos = meta.bos_token if meta.add_bos and meta.bos_token else ""
    system = default_system(tokenizer)
    expected = [jinja_prompt(tokenizer, messages) for messages in SAMPLE_CONVERSATIONS]
    refused = tuple(
        roles_of(messages)
        for messages, prompt in zip(SAMPLE_CONVERSATIONS, expected, strict=True)
        if prompt is None
    )
    tried = {}
    for family, template in candidate_templates(tokenizer, bos).items():
        chat = OllamaChat(template, system, meta.stop, family, bos, refused)
        if not (differences := parity_differences(chat, expected)):
            return chat
        tried[family] = differences[0]
    one_turn = expected[0] or ""
    raise StageError(
        "Ollama export: no Go template here prompts the model as its chat template does "
        f"(tried {', '.join(tried)}; ChatML: {tried['chatml'][:300]}); the chat template "
        f"renders a one-turn chat as {one_turn[:200]!r}. Write the Modelfile's TEMPLATE by "
        "hand, or leave gguf out of export.formats"
    )


def model_chat(model_dir: Path) -> OllamaChat:
    """The checked chat settings for the model (and tokenizer) in `model_dir`."""
    tokenizer = load_tokenizer(model_dir)
    return ollama_chat(tokenizer, chat_metadata(model_dir, tokenizer))


# --- the Modelfile --------------------------------------------------------------------------


def triple_quoted(value: str) -> str:
    if '"""' in value:
        raise StageError(
            f'Ollama export: {value[:60]!r} contains """, which a Modelfile cannot quote'
        )
    return f'"""{value}"""'


def modelfile_text(gguf_name: str, chat: OllamaChat) -> str:
    lines = [
        f"# Ollama: `ollama create NAME -f {MODELFILE}` here, then `ollama run NAME`.",
        f"# Chat format: {chat.family}, checked against the model's own chat template.",
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


def write_modelfile(gguf_path: Path, model_dir: Path, chat: OllamaChat | None = None) -> Path:
    """Write `Modelfile` next to `gguf_path` for the model (and tokenizer) in `model_dir`."""
    chat = chat or model_chat(model_dir)
    path = gguf_path.parent / MODELFILE
    path.write_text(modelfile_text(gguf_path.name, chat))
    return path
