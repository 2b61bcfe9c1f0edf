"""Run llama.cpp's convert_hf_to_gguf.py in this process, with two additions.

    python convert_runner.py LLAMA_CPP_DIR [--eot-id=N] [--add-bos=0|1] [--add-space-prefix=0|1]
        -- CONVERTER_ARGS...

- llama.cpp names a BPE tokenizer's pre-tokenizer (how text is split before the merges) by
  hashing the tokenizer's ids of a fixed text; a vocabulary it has not seen (a tiny test
  tokenizer, a retrained one) raises "BPE pre-tokenizer was not recognized" even when it splits
  text exactly as a known one. Only then, the name is taken from tokenizer.json: the llama.cpp
  pre-tokenizer whose split rules its pre_tokenizer spec matches exactly (Llama 3's regex:
  "llama-bpe", Qwen2's: "qwen2", a plain GPT-2 byte-level split: "gpt-2"), and a line starting
  with NOTE_PREFIX says so. Any other spec keeps llama.cpp's error.
- `--eot-id`/`--add-bos`/`--add-space-prefix`: the token a chat answer ends with, written as
  the end-of-turn token when the converter sets none; whether llama.cpp adds the BOS, and
  (SentencePiece vocabularies) whether it puts a "▁" before the text after a special token,
  as the HF tokenizer does.

Standalone: it runs in a subprocess with llama.cpp's own gguf-py first on the path, so it
imports nothing from the project (the pure functions here are imported by it, too)."""

import json
import sys
from pathlib import Path
from typing import Any

NOTE_PREFIX = "convert_runner:"
# The split regexes of published tokenizer.json files, as llama.cpp's src/llama-vocab.cpp quotes
# them for its "llama-bpe" (Llama 3) and "qwen2" pre-tokenizers.
LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)
SPLIT_RULES: dict[str, tuple] = {
    "llama-bpe": (None, ("Split", LLAMA3_REGEX, "Isolated", False), ("ByteLevel", False, False)),
    "qwen2": ("NFC", ("Split", QWEN2_REGEX, "Isolated", False), ("ByteLevel", False, False)),
    "smollm": (None, ("Digits", True), ("ByteLevel", False, True)),
    "gpt-2": (None, ("ByteLevel", False, True)),
}
"""llama.cpp pre-tokenizer name -> tokenizer.json's normalizer and the pre_tokenizer steps
that split text as it does (Qwen's tokenizer.json normalises to NFC, and llama.cpp's
converter names it "qwen2" all the same)."""


def split_step(step: dict[str, Any]) -> tuple | None:
    """One pre_tokenizer step as the rule that decides the split (None: a kind not matched)."""
    kind = step.get("type")
    if kind == "ByteLevel":
        return ("ByteLevel", step.get("add_prefix_space", True), step.get("use_regex", True))
    if kind == "Split":
        pattern = step.get("pattern") or {}
        return ("Split", pattern.get("Regex"), step.get("behavior"), step.get("invert", False))
    if kind == "Digits":
        return ("Digits", step.get("individual_digits", False))
    return None


def split_rules(spec: dict[str, Any]) -> tuple | None:
    """tokenizer.json's normalizer kind and pre_tokenizer steps as split rules, or None."""
    normalizer, pre = spec.get("normalizer"), spec.get("pre_tokenizer")
    if not isinstance(pre, dict) or not (normalizer is None or isinstance(normalizer, dict)):
        return None
    steps = pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]
    rules = tuple(split_step(step) for step in steps)
    return None if None in rules else ((normalizer or {}).get("type"), *rules)


def fallback_pre_tokenizer(spec: dict[str, Any]) -> str | None:
    """The llama.cpp pre-tokenizer that splits text exactly as tokenizer.json `spec` does."""
    rules = split_rules(spec)
    return next((name for name, known in SPLIT_RULES.items() if known == rules), None)


def text_model_classes(converter) -> list[type]:
    """The classes defining get_vocab_base_pre: in conversion/base.py (llama.cpp since 2026),
    or in convert_hf_to_gguf.py itself (older checkouts given as LLAMA_CPP_DIR)."""
    modules = [sys.modules.get("conversion.base"), converter]
    found = [getattr(m, "TextModel", None) for m in modules if m is not None]
    return [cls for cls in dict.fromkeys(found) if cls and "get_vocab_base_pre" in vars(cls)]


def patch_pre_tokenizer(converter) -> None:
    for cls in text_model_classes(converter):
        original = cls.get_vocab_base_pre

        def get_vocab_base_pre(self, tokenizer, _original=original) -> str:
            try:
                return _original(self, tokenizer)
            except NotImplementedError as error:
                if "not recognized" not in str(error):
                    raise
                path = Path(self.dir_model) / "tokenizer.json"
                spec = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
                name = fallback_pre_tokenizer(spec)
                if name is None:
                    raise
                print(
                    f"{NOTE_PREFIX} pre-tokenizer {name!r}: llama.cpp does not know this "
                    f"vocabulary's hash; its tokenizer.json splits text as {name!r} does",
                    file=sys.stderr,
                )
                return name

        cls.get_vocab_base_pre = get_vocab_base_pre


def patch_special_vocab(gguf, eot_id: int | None, add_bos: bool | None) -> None:
    original = gguf.SpecialVocab.add_to_gguf

    def add_to_gguf(self, gw, quiet: bool = False) -> None:
        ids = self.special_token_ids
        if eot_id is not None and "eot" not in ids and ids.get("eos") != eot_id:
            ids["eot"] = eot_id
            print(f"{NOTE_PREFIX} end-of-turn token id {eot_id}", file=sys.stderr)
        if add_bos is not None and self.add_special_token.get("bos") != add_bos:
            self.add_special_token["bos"] = add_bos
            print(f"{NOTE_PREFIX} add_bos_token {add_bos}, as the tokenizer", file=sys.stderr)
        original(self, gw, quiet)

    gguf.SpecialVocab.add_to_gguf = add_to_gguf


def patch_space_prefix(gguf, add_space_prefix: bool | None) -> None:
    """Set tokenizer.ggml.add_space_prefix of a SentencePiece ("llama") vocabulary: llama.cpp
    then puts a "▁" before every text that follows a special token, which a tokenizer with
    `legacy: false` (Metaspace prepend_scheme "first") does not."""
    original = gguf.GGUFWriter.write_header_to_file
    key = gguf.Keys.Tokenizer.ADD_PREFIX

    def write_header_to_file(self, *args, **kwargs) -> None:  # the header counts the keys
        model = self.kv_data[0].get(gguf.Keys.Tokenizer.MODEL)
        current = self.kv_data[0].get(key)
        wanted = add_space_prefix is not None and model is not None and model.value == "llama"
        if wanted and (current is None or current.value != add_space_prefix):
            self.kv_data[0][key] = gguf.GGUFValue(add_space_prefix, gguf.GGUFValueType.BOOL)
            print(f"{NOTE_PREFIX} add_space_prefix {add_space_prefix}", file=sys.stderr)
        original(self, *args, **kwargs)

    gguf.GGUFWriter.write_header_to_file = write_header_to_file


def parse(argv: list[str]) -> tuple[Path, dict[str, int], list[str]]:
    if "--" not in argv or not argv[0] or argv[0].startswith("-"):
        raise SystemExit(__doc__.split("\n\n")[1])
    split = argv.index("--")
    options = dict(option.removeprefix("--").split("=", 1) for option in argv[1:split])
    return Path(argv[0]), {name: int(value) for name, value in options.items()}, argv[split + 1 :]


def main(argv: list[str]) -> None:
    llama_cpp, options, converter_args = parse(argv)
    sys.path[:0] = [str(llama_cpp / "gguf-py"), str(llama_cpp)]
    import convert_hf_to_gguf as converter  # noqa: PLC0415 (found on the path set above)
    import gguf  # noqa: PLC0415 (llama.cpp's own gguf-py, first on the path)

    def flag(name: str) -> bool | None:
        return None if name not in options else bool(options[name])

    patch_pre_tokenizer(converter)
    patch_special_vocab(gguf, options.get("eot-id"), flag("add-bos"))
    patch_space_prefix(gguf, flag("add-space-prefix"))
    sys.argv = [str(llama_cpp / "convert_hf_to_gguf.py"), *converter_args]
    converter.main()


if __name__ == "__main__":
    main(sys.argv[1:])
