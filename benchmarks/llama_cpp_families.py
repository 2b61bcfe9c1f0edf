"""llama.cpp itself on the GGUF export of every tiny model family (not part of CI).

1. Builds llama.cpp's llama-simple from the llama-cpp-python sdist the export pins (the same
   llama.cpp whose converter wrote the files): CPU, Release, that target only, -j2; plus
   tokenize-ids, a 30-line program on libllama that prints the ids llama.cpp gives a prompt
   (add_special and parse_special, as llama-simple and Ollama tokenize).
2. For each family of tests/tiny_model.py: the tiny model, its tokenizer saved as training
   uses it (a template without a system role folded), fine-tuned (all weights, 80 steps) to
   answer two tickets and end the turn; exported by the project's own export code to
   f16/q8_0/q4_0 with a Modelfile.
3. For each file: llama.cpp loads it, tokenizes the chat-templated prompt to the HF tokenizer's
   ids, and greedily generates (llama-simple stops at an end-of-generation token): the answer
   text, the tokens generated, whether it stopped before the budget.

Run with the project's interpreter, on a baked project:
    python benchmarks/llama_cpp_families.py --project /tmp/bake/support-triage-finetune \\
        [--work /tmp/llama-cpp-families] [--families smollm2,gemma3] [--build-only] [--out F]
The build is kept in --work (its log in build.log) and reused by a later run. Measured on 2
shared cores: the build 222 s; every family's three files load, tokenize the prompt to the HF
ids, answer and stop (table in docs/benchmarks.md).
"""

import argparse
import json
import re
import shutil
import subprocess
import sys
import tarfile
import time
from importlib import import_module
from pathlib import Path

TOKENIZE_IDS = r"""
#include "llama.h"
#include <cstdio>
#include <string>
#include <vector>
int main(int argc, char ** argv) {
    if (argc != 3) { fprintf(stderr, "usage: %s MODEL TEXT\n", argv[0]); return 2; }
    llama_log_set([](ggml_log_level, const char *, void *) {}, nullptr);
    llama_backend_init();
    llama_model_params params = llama_model_default_params();
    params.vocab_only = true;
    llama_model * model = llama_model_load_from_file(argv[1], params);
    if (!model) { fprintf(stderr, "cannot load %s\n", argv[1]); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);
    std::string text = argv[2];
    int n = -llama_tokenize(vocab, text.c_str(), text.size(), nullptr, 0, true, true);
    std::vector<llama_token> tokens(n);
    llama_tokenize(vocab, text.c_str(), text.size(), tokens.data(), n, true, true);
    printf("[");
    for (int i = 0; i < n; i++) printf(i ? ", %d" : "%d", tokens[i]);
    printf("]\n");
    llama_model_free(model);
    return 0;
}
"""
CMAKE_OPTIONS = [
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF",
    "-DLLAMA_BUILD_APP=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_CURL=OFF",
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
TYPES = ("f16", "q8_0", "q4_0")
MAX_NEW_TOKENS = 24


def run(command: list, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(part) for part in command], check=True, text=True, **kwargs)


def build(llama_cpp, work: Path) -> tuple[Path, float]:
    """bin/ with llama-simple and tokenize-ids, built from the pinned sdist (or reused)."""
    binaries = work / "build" / "bin"
    if (binaries / "llama-simple").exists() and (binaries / "tokenize-ids").exists():
        return binaries, 0.0
    start = time.perf_counter()
    source = work / "llama.cpp"
    if not source.exists():
        sdist = work / llama_cpp.SDIST
        if not sdist.exists():
            llama_cpp.pip_download(work)
        if llama_cpp.sha256(sdist) != llama_cpp.SDIST_SHA256:
            sys.exit(f"{sdist} is not the pinned sdist")
        with tarfile.open(sdist) as archive:
            members = [m for m in archive.getmembers() if m.name.startswith(llama_cpp.VENDORED)]
            for member in members:
                member.name = member.name.removeprefix(llama_cpp.VENDORED)
            archive.extractall(source, members=members, filter="data")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    with (work / "build.log").open("w") as log:  # compiler warnings by the thousand
        configure = ["cmake", "-S", source, "-B", work / "build", *generator, *CMAKE_OPTIONS]
        run(["nice", *configure], stdout=log, stderr=subprocess.STDOUT)
        compile_ = ["cmake", "--build", work / "build", "-j2", "--target", "llama-simple"]
        run(["nice", *compile_], stdout=log, stderr=subprocess.STDOUT)
    program = work / "tokenize_ids.cpp"
    program.write_text(TOKENIZE_IDS)
    include = [f"-I{source / 'include'}", f"-I{source / 'ggml' / 'include'}"]
    libraries = [f"-L{binaries}", "-lllama", "-lggml", "-lggml-base", f"-Wl,-rpath,{binaries}"]
    output = ["-o", binaries / "tokenize-ids"]
    run(["c++", "-O1", "-std=c++17", *include, program, *libraries, *output])
    return binaries, time.perf_counter() - start


def fine_tune_to_stop(model_dir: Path, out: Path) -> Path:
    """The model trained (all weights) to answer STOP_ROWS and end the turn, saved to `out`
    with its tokenizer files."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    examples = []
    for chat in STOP_ROWS:
        prompt = prompt_ids(tokenizer, chat[:1])
        full = tokenizer.apply_chat_template(chat, tokenize=True, return_dict=True)["input_ids"]
        labels = [-100] * len(prompt) + list(full[len(prompt) :])
        examples.append((torch.tensor([full]), torch.tensor([labels])))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(80):
        for input_ids, labels in examples:
            model(input_ids=input_ids, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    shutil.copytree(model_dir, out)  # tokenizer files, tokenizer.model, configs
    model.eval().save_pretrained(out, safe_serialization=True)
    return out


def prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    return list(encoded["input_ids"])


def export_source(tests: Path, package: str, family: str, work: Path) -> Path:
    """The family's tiny model with the tokenizer training uses saved next to it."""
    from transformers import AutoTokenizer

    sys.path.insert(0, str(tests))
    build_tiny_model = import_module("tiny_model").build_tiny_model
    fold = import_module(f"{package}.models.chat_template").fold_system_if_needed
    base = build_tiny_model(work / family / "base", family=family)
    tokenizer = AutoTokenizer.from_pretrained(base)
    fold(tokenizer)
    tokenizer.save_pretrained(base)
    return fine_tune_to_stop(base, work / family / "merged")


def llama_cpp_run(binaries: Path, path: Path, text: str) -> dict:
    ids = run([binaries / "tokenize-ids", path, text], capture_output=True).stdout
    simple = [binaries / "llama-simple", "-m", path, "-n", MAX_NEW_TOKENS, text]
    done = subprocess.run([str(part) for part in simple], capture_output=True, text=True)
    decoded = re.findall(r"decoded (\d+) tokens", done.stderr)
    eog = re.findall(r"EOG token\s*=\s*\d+ '([^']*)'", done.stderr)
    return {
        "loads": done.returncode == 0 and bool(decoded),
        "ids": json.loads(ids.strip().splitlines()[-1]),
        "output": done.stdout.rstrip("\n"),
        "generated": int(decoded[-1]) if decoded else 0,
        "eog": eog,
    }


def family_rows(binaries: Path, project: Path, package: str, family: str, work: Path) -> list:
    from transformers import AutoTokenizer

    gguf = import_module(f"{package}.export.gguf")
    ollama = import_module(f"{package}.export.ollama")
    merged = export_source(project / "tests", package, family, work)
    paths = {quant: work / family / f"model-{quant}.gguf" for quant in TYPES}
    start = time.perf_counter()
    written = gguf.write_ggufs(merged, paths)
    seconds = time.perf_counter() - start
    chat = ollama.model_chat(merged)
    ollama.write_modelfile(paths["q4_0"], merged, chat)
    tokenizer = AutoTokenizer.from_pretrained(merged)
    meta = gguf.chat_metadata(merged, tokenizer)
    rows = []
    for quant, path in paths.items():
        checks = []
        for chat_row in STOP_ROWS:
            text = tokenizer.apply_chat_template(
                chat_row[:1], tokenize=False, add_generation_prompt=True
            )
            if meta.add_bos and text.startswith(meta.bos_token):
                text = text[len(meta.bos_token) :]  # llama.cpp adds the BOS from the metadata
            result = llama_cpp_run(binaries, path, text)
            result["same_ids"] = result["ids"] == prompt_ids(tokenizer, chat_row[:1])
            result["answered"] = result["output"].endswith(chat_row[1]["content"])
            result["stopped"] = result["generated"] < MAX_NEW_TOKENS
            checks.append(result)
        rows.append(
            {
                "family": family,
                "arch": written.architecture,
                "pre": written.pre_tokenizer,
                "type": quant,
                "convert_s": round(seconds, 1),
                "mib": round(path.stat().st_size / 2**20, 2),
                "loads": all(c["loads"] for c in checks),
                "same_prompt_ids": all(c["same_ids"] for c in checks),
                "generated": [c["generated"] for c in checks],
                "answered": all(c["answered"] for c in checks),
                "stopped": all(c["stopped"] for c in checks),
                "end_token": meta.end_token,
                "eog": checks[0]["eog"],
                "modelfile": chat.family,
            }
        )
        print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| family | arch | pre-tokenizer | GGUF | loads | prompt ids = HF | tokens generated "
        "| answer, then stops | end token (llama.cpp EOG set) | Modelfile |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['family']} | {r['arch']} | {r['pre']} | {r['type']} | "
            f"{'yes' if r['loads'] else 'NO'} | {'yes' if r['same_prompt_ids'] else 'NO'} | "
            f"{', '.join(map(str, r['generated']))} | "
            f"{'yes' if r['answered'] and r['stopped'] else 'NO'} | "
            f"{r['end_token']} ({', '.join(r['eog'])}) | {r['modelfile']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True, help="a baked project")
    parser.add_argument("--work", type=Path, default=Path("/tmp/llama-cpp-families"))
    parser.add_argument("--families", help="comma-separated (default: all of tiny_model's)")
    parser.add_argument("--build-only", action="store_true")
    parser.add_argument("--out", type=Path, help="write the rows as JSON here")
    args = parser.parse_args()

    src = args.project / "src"
    sys.path.insert(0, str(src))
    package = next(p.parent.parent.name for p in src.glob("*/export/llama_cpp.py"))
    llama_cpp = import_module(f"{package}.export.llama_cpp")
    args.work.mkdir(parents=True, exist_ok=True)
    binaries, seconds = build(llama_cpp, args.work)
    print(f"llama.cpp ({llama_cpp.SDIST}): {binaries}, built in {seconds:.0f} s", flush=True)
    if args.build_only:
        return
    sys.path.insert(0, str(args.project / "tests"))
    families = args.families.split(",") if args.families else import_module("tiny_model").FAMILIES
    rows = []
    for family in families:
        shutil.rmtree(args.work / family, ignore_errors=True)
        rows += family_rows(binaries, args.project, package, family, args.work)
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
