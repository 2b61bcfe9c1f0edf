"""GGUF export and the Ollama Modelfile: written from the tiny Llama, loaded back with
transformers' GGUF loader, and compared with the source model, tokenizer and chat template."""

import importlib
import json
import re
import shutil
from pathlib import Path

import gguf
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

# This file holds chat templates (Jinja, Go), so the template copies it without rendering
# (cookiecutter.json `_copy_without_render`) and it finds the package by looking.
PACKAGE = next(
    init.parent.name for init in (Path(__file__).parents[1] / "src").glob("*/__init__.py")
)
StageError = importlib.import_module(f"{PACKAGE}.errors").StageError
gguf_export = importlib.import_module(f"{PACKAGE}.export.gguf")
chat_metadata, write_gguf = gguf_export.chat_metadata, gguf_export.write_gguf
ollama = importlib.import_module(f"{PACKAGE}.export.ollama")
MODELFILE, OllamaChat, ollama_prompt = ollama.MODELFILE, ollama.OllamaChat, ollama.ollama_prompt
render_go_template, write_modelfile = ollama.render_go_template, ollama.write_modelfile

EOS = "<|im_end|>"
PROMPT = [
    {"role": "system", "content": "You sort support tickets."},
    {"role": "user", "content": "Ticket #42: my refund of $30 failed! What is the error?"},
]
# Max |logit difference| to the source model on PROMPT (measured: f16 2e-4, q8_0 6e-3,
# q4_0 7e-2, logits up to ~1.2). Writing q_proj/k_proj without llama.cpp's permutation moves
# the f16 logits by ~7e-3, so the f16 bound catches it.
TOLERANCE = {"f16": 1e-3, "q8_0": 2e-2, "q4_0": 0.15}
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + SMOLLM2_SYSTEM + "<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
LLAMA2_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}"
    "{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}{% endfor %}"
)
# ChatML on a one-turn chat, but it renames earlier assistant turns: only a multi-turn sample
# shows the difference.
CHATML_LOOKALIKE = (
    "{% for m in messages %}{{ '<|im_start|>' + (m['role'] if m['role'] != 'assistant' "
    "else 'bot') + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CONVERSATIONS = [
    [{"role": "user", "content": "Où est ma commande ? 🚚"}],
    [
        {"role": "system", "content": "Answer in JSON."},
        {"role": "user", "content": "Refund?"},
        {"role": "assistant", "content": '{"category": "billing"}'},
        {"role": "user", "content": "And shipping?"},
    ],
]
STOP_ROWS = [
    [
        {"role": "user", "content": "Ticket: I was charged twice."},
        {"role": "assistant", "content": "billing"},
    ],
    [
        {"role": "user", "content": "Ticket: the app shows an error."},
        {"role": "assistant", "content": "technical"},
    ],
]
MAX_NEW_TOKENS = 32  # the answers are 2-3 tokens and the EOS


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def load_gguf(path: Path):
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    return model.eval(), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def model_copy(source: Path, target: Path, **json_edits: dict) -> Path:
    """A copy of the model directory with some JSON files' keys replaced."""
    shutil.copytree(source, target)
    for name, edits in json_edits.items():
        path = target / f"{name}.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | edits))
    return target


@pytest.fixture(scope="module")
def gguf_files(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("gguf")
    return {
        quant: write_gguf(tiny_model_dir, out / f"model-{quant}.gguf", quant, progress=False)
        for quant in TOLERANCE
    }


@pytest.mark.parametrize("quant", list(TOLERANCE))
def test_a_gguf_loads_back_with_the_source_logits_tokens_eos_and_template(
    quant: str, gguf_files: dict, tiny_model_dir: Path
) -> None:
    source = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    source_tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model, tokenizer = load_gguf(gguf_files[quant])

    ids = prompt_ids(source_tokenizer, PROMPT)
    assert prompt_ids(tokenizer, PROMPT) == ids
    assert tokenizer.eos_token == EOS and tokenizer.eos_token_id == source_tokenizer.eos_token_id
    assert tokenizer.chat_template == source_tokenizer.chat_template
    with torch.no_grad():
        expected = source(torch.tensor([ids])).logits
        got = model(torch.tensor([ids])).logits
    assert (got - expected).abs().max().item() <= TOLERANCE[quant]


def test_the_gguf_metadata_is_what_llama_cpp_reads(gguf_files: dict, tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    reader = gguf.GGUFReader(gguf_files["q4_0"])

    def field(key: str):
        return reader.fields[key].contents()

    assert field("general.architecture") == "llama"
    assert field("llama.attention.head_count_kv") == 2
    assert field("tokenizer.ggml.model") == "gpt2"
    assert field("tokenizer.ggml.pre") == "gpt-2"  # the tiny tokenizer's plain GPT-2 split
    assert field("tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
    assert field("tokenizer.ggml.bos_token_id") == tokenizer.bos_token_id
    assert field("tokenizer.ggml.add_bos_token") is False  # as the HF tokenizer: no BOS
    assert field("tokenizer.chat_template") == tokenizer.chat_template
    assert field("tokenizer.ggml.tokens")[tokenizer.eos_token_id] == EOS
    assert len(field("tokenizer.ggml.tokens")) == field("llama.vocab_size")
    types = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
    q = gguf.GGMLQuantizationType
    assert types["blk.0.attn_q.weight"] == q.Q4_0 and types["blk.1.ffn_down.weight"] == q.Q4_0
    assert types["token_embd.weight"] == q.Q8_0  # llama-quantize's Q6_K, which gguf cannot write
    assert types["blk.0.attn_norm.weight"] == q.F32 and "output.weight" not in types  # tied


@pytest.fixture(scope="module")
def stopping_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model fine-tuned (all weights, high lr, 80 steps) to answer STOP_ROWS and then stop,
    saved as a merged Hugging Face directory with its tokenizer."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = []
    for chat in STOP_ROWS:
        prompt = prompt_ids(tokenizer, chat[:1])
        full = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"]
        assert full[: len(prompt)] == prompt
        labels = [-100] * len(prompt) + list(full[len(prompt) :])  # answer, EOS, "\n"
        examples.append((torch.tensor([full]), torch.tensor([labels])))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):  # loss ~0.015: both answers memorised
        for input_ids, labels in examples:
            model(input_ids=input_ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    out = tmp_path_factory.mktemp("stopping") / "merged"
    model.eval().save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return out


@pytest.mark.parametrize("export", ["merged", "f16", "q8_0"])
def test_the_fine_tuned_model_stops_with_the_training_eos(
    export: str, stopping_model: Path
) -> None:
    source_tokenizer = AutoTokenizer.from_pretrained(stopping_model)
    if export == "merged":
        model = AutoModelForCausalLM.from_pretrained(stopping_model).eval()
        tokenizer = source_tokenizer
    else:
        path = write_gguf(stopping_model, stopping_model.parent / f"{export}.gguf", export)
        model, tokenizer = load_gguf(path)
    for chat in STOP_ROWS:
        ids = torch.tensor([prompt_ids(tokenizer, chat[:1])])
        with torch.no_grad():
            output = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                eos_token_id=tokenizer.eos_token_id,  # the export's own EOS
                pad_token_id=tokenizer.pad_token_id,
            )
        generated = output[0, ids.shape[1] :].tolist()
        assert len(generated) < MAX_NEW_TOKENS
        assert generated[-1] == source_tokenizer.eos_token_id
        assert tokenizer.decode(generated[:-1]) == chat[1]["content"]


def read_modelfile(path: Path) -> dict:
    text = path.read_text()
    quoted = dict(re.findall(r'^(TEMPLATE|SYSTEM) """(.*?)"""$', text, re.M | re.S))
    return {
        "from": re.findall(r"^FROM (.+)$", text, re.M),
        "template": quoted["TEMPLATE"],
        "system": quoted.get("SYSTEM"),
        "stop": re.findall(r'^PARAMETER stop "(.*)"$', text, re.M),
        "temperature": re.findall(r"^PARAMETER temperature (.+)$", text, re.M),
    }


@pytest.mark.parametrize("template", ["tiny", "smollm2"])
def test_the_modelfile_prompts_as_the_chat_template_and_stops_on_the_eos(
    template: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(tiny_model_dir, tmp_path / "model")
    if template == "smollm2":
        (model_dir / "chat_template.jinja").write_text(SMOLLM2_TEMPLATE)
    gguf_path = tmp_path / "export" / "model-q8_0.gguf"
    gguf_path.parent.mkdir()
    path = write_modelfile(gguf_path, model_dir)

    assert path == gguf_path.parent / MODELFILE
    modelfile = read_modelfile(path)
    assert modelfile["from"] == ["./model-q8_0.gguf"]
    assert modelfile["stop"] == [EOS]
    assert modelfile["temperature"] == ["0"]
    assert modelfile["system"] == (SMOLLM2_SYSTEM if template == "smollm2" else None)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    chat = OllamaChat(modelfile["template"], modelfile["system"], tuple(modelfile["stop"]))
    for messages in [*CONVERSATIONS, PROMPT, PROMPT[1:]]:
        expected = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert ollama_prompt(chat, messages) == expected


@pytest.mark.parametrize(
    ("template", "error"),
    [(LLAMA2_TEMPLATE, "not ChatML"), (CHATML_LOOKALIKE, "prompt the model differently")],
)
def test_an_unsupported_chat_template_gets_no_modelfile(
    template: str, error: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(tiny_model_dir, tmp_path / "model")
    (model_dir / "chat_template.jinja").write_text(template)
    with pytest.raises(StageError, match=error):
        write_modelfile(tmp_path / "model.gguf", model_dir)
    assert not (tmp_path / MODELFILE).exists()


def test_the_go_renderer_follows_go_trim_markers() -> None:
    """Go's `{{- ` drops all white space before the action, ` -}}` all after it; Ollama's own
    ChatML test (template/template_test.go) expects this rendering."""
    template = (
        "\n{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n"
        "{{ end }}<|im_start|>assistant\n"
    )
    messages = [{"Role": "system", "Content": "Be brief."}, {"Role": "user", "Content": "Hi"}]
    assert render_go_template(template, {"Messages": messages}) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert render_go_template("a \n {{- .X -}} \n b", {"X": 1}) == "a1b"
    with pytest.raises(ValueError, match="outside the rendered subset"):
        render_go_template("{{ if .X }}x{{ end }}", {"X": 1})


def test_an_eos_the_generation_config_does_not_stop_on_is_an_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(
        tiny_model_dir, tmp_path / "model", generation_config={"eos_token_id": 0}
    )
    with pytest.raises(StageError, match="not the generation config's eos_token_id"):
        chat_metadata(model_dir)


def test_an_eos_the_chat_template_does_not_end_answers_with_is_an_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(
        tiny_model_dir,
        tmp_path / "model",
        tokenizer_config={"eos_token": "<|endoftext|>"},
        generation_config={"eos_token_id": 0},
    )
    with pytest.raises(StageError, match=re.escape("ends an answer with '<|im_end|>")):
        chat_metadata(model_dir)


def test_a_non_llama_model_is_refused_by_name(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = model_copy(
        tiny_model_dir,
        tmp_path / "model",
        config={"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2"},
    )
    with pytest.raises(StageError, match="Qwen2ForCausalLM"):
        write_gguf(model_dir, tmp_path / "model.gguf", "f16")
    assert not list(tmp_path.glob("model.gguf*"))


def test_an_unknown_gguf_type_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="q4_k_m"):
        write_gguf(tiny_model_dir, tmp_path / "model.gguf", "q4_k_m")
