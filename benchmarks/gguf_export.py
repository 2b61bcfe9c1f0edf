"""GGUF export of the real fine-tuned SmolLM2: conversion time and memory, file sizes, and
whether transformers' GGUF loader gives back the merged model's greedy answers.

For each GGUF type, the project's `export.gguf.write_gguf` (llama.cpp's converter, pinned; q4_0
re-quantised from its f16) converts the merged model in a child process run under
`/usr/bin/time -v`, so the wall time and peak RSS are the conversion's alone (Python, torch and
transformers imports and the converter's own subprocess included). Then the merged model
(float32) and every GGUF (dequantised to float32 by transformers into the merged model's
architecture, stopping where llama.cpp stops, as the export stage's parity check reads it)
answer the same chat prompts greedily: two test rows of the task (with their system prompt) and
one general question (SmolLM2's default system prompt applies). Reported per type: seconds,
peak RSS, file size, tokenizer.ggml.pre, whether the GGUF's tokenizer gives the merged
tokenizer's prompt ids, and per prompt whether the answer is identical to the merged model's
and ended with a stop token before the token budget. The Modelfile
for the last type is written next to the files and printed.

With `--llama-cpp DIR` (a bin/ holding llama-simple and tokenize-ids, as
`python benchmarks/llama_cpp_families.py --project BAKE --build-only` builds them from the
pinned sdist into /tmp/llama-cpp-families/build/bin; llama-tokenize cannot parse special
tokens), llama.cpp itself also loads every file: its token ids for the HF-rendered prompts,
and its greedy answer (llama-simple: greedy, stops at an end-of-generation token) against the
merged model's.

Run with the project's interpreter, in a project where select has run (e.g. after `make
demo`; `make bench-gguf-export` runs this):
    python benchmarks/gguf_export.py --project build/demo/support-triage-finetune \\
        --out /tmp/gguf.json [--llama-cpp /path/to/llama.cpp/build/bin]
The merged model is the selected model (models/selected: the adapter on models/base) merged
and saved in float32 by the project's own `export.merged.write_merged` into --work (the export
stage writes models/export/merged in `export.dtype`, f16 by default; the figures are of the
float32 merge). --src, --merged and --rows override the project's package, merged model and
test split.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time
from importlib import import_module
from pathlib import Path

CONVERT = """
import sys
sys.path.insert(0, sys.argv[1])
from importlib import import_module
from pathlib import Path
write_gguf = import_module(sys.argv[2] + ".export.gguf").write_gguf
write_gguf(Path(sys.argv[3]), Path(sys.argv[4]), sys.argv[5])
"""
MERGE = """
import sys
from importlib import import_module
from pathlib import Path
write_merged = import_module(sys.argv[1] + ".export.merged").write_merged
write_merged(Path("models/selected"), Path(sys.argv[2]), "f32", Path("models/base"))
"""
GENERAL_PROMPT = [{"role": "user", "content": "What is the capital of France?"}]
MAX_NEW_TOKENS = 96  # task answers are ~45 tokens (eval.max_new_tokens_task is 56)


def package_in(src: Path) -> str:
    found = [p.parent.parent.name for p in src.glob("*/export/gguf.py")]
    if len(found) != 1:
        sys.exit(f"{src} holds no (or several) packages with export/gguf.py: {found}")
    return found[0]


def merge_selected(project: Path, src: Path, package: str, out: Path) -> Path:
    """The project's selected model merged into its base (by `package` in `src`), saved in
    float32 into `out`."""
    command = [sys.executable, "-c", MERGE, package, str(out)]
    env = {**os.environ, "PYTHONPATH": str(src)}
    subprocess.run(command, cwd=project, env=env, check=True)
    return out


def timed_conversion(src: Path, package: str, merged: Path, out: Path, quant: str) -> dict:
    """Convert in a child process under /usr/bin/time -v: wall seconds and peak RSS."""
    command = ["/usr/bin/time", "-v", sys.executable, "-c", CONVERT]
    command += [str(src), package, str(merged), str(out), quant]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{quant}: conversion failed:\n{done.stderr[-3000:]}")
    peak_kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
    return {"seconds": round(wall, 1), "peak_rss_mib": round(peak_kib / 1024)}


def greedy(model, tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """(prompt ids, generated ids) of a greedy answer."""
    import torch

    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    ids = torch.tensor([list(encoded["input_ids"])])
    with torch.no_grad():
        output = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=MAX_NEW_TOKENS,
            do_sample=False,
            eos_token_id=model.generation_config.eos_token_id,  # every stop id
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return ids[0].tolist(), output[0, ids.shape[1] :].tolist()


def answers(model, tokenizer, prompts: list[list[dict]]) -> list[dict]:
    rows = []
    for messages in prompts:
        prompt, generated = greedy(model, tokenizer, messages)
        stops = model.generation_config.eos_token_id
        stops = stops if isinstance(stops, list) else [stops]
        stopped = bool(generated) and generated[-1] in stops
        text = tokenizer.decode(generated, skip_special_tokens=True)
        rows.append({"prompt_ids": prompt, "ids": generated, "stopped": stopped, "text": text})
    return rows


def llama_cpp_answers(binaries: Path, path: Path, tokenizer, prompts: list, reference: list):
    """llama.cpp's own token ids and greedy answer for each prompt, against the reference."""
    rows = []
    for messages in prompts:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        bos = tokenizer.bos_token or ""
        adds_bos = tokenizer("a")["input_ids"][:1] == [tokenizer.bos_token_id]
        if bos and adds_bos and text.startswith(bos):
            text = text[len(bos) :]  # llama.cpp adds the BOS from the file's metadata
        command = [binaries / "tokenize-ids", path, text]
        ids = subprocess.run(command, capture_output=True, text=True)
        command = [binaries / "llama-simple", "-m", path, "-n", str(MAX_NEW_TOKENS), text]
        run = subprocess.run(command, capture_output=True, text=True)
        decoded = int(re.findall(r"decoded (\d+) tokens", run.stderr)[-1])
        rows.append(
            {
                "ids": json.loads(ids.stdout.strip().splitlines()[-1]),
                "text": run.stdout.split(text, 1)[-1].strip(),
                "stopped": decoded < MAX_NEW_TOKENS,
            }
        )
    pairs = list(zip(rows, reference, strict=True))
    return {
        "same_prompt_ids": [r["ids"] == ref["prompt_ids"] for r, ref in pairs],
        "identical_answers": [r["text"] == ref["text"].strip() for r, ref in pairs],
        "stopped": [r["stopped"] for r in rows],
        "texts": [r["text"] for r in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, help="a project where select has run")
    parser.add_argument("--src", type=Path, help="a baked project's src/ (default: the project's)")
    parser.add_argument("--merged", type=Path, help="a merged model dir (default: see above)")
    parser.add_argument("--rows", type=Path, help="a test split: its first 2 prompts are used")
    parser.add_argument("--types", default="f16,q8_0,q4_0")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gguf-export-bench"))
    parser.add_argument("--out", type=Path)
    parser.add_argument("--llama-cpp", type=Path, help="bin/ with llama-tokenize, llama-simple")
    args = parser.parse_args()

    import gguf
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if args.project is None and (args.src is None or args.merged is None):
        parser.error("give --project, or --src and --merged")
    project = args.project.resolve() if args.project else None
    args.src = (args.src or project / "src").resolve()
    if args.rows is None and project is not None:
        args.rows = project / "data" / "splits" / "test.jsonl"
    args.work.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(args.src))
    package = package_in(args.src)
    if args.merged is None:
        args.merged = merge_selected(project, args.src, package, args.work.resolve() / "merged-f32")
    write_modelfile = import_module(f"{package}.export.ollama").write_modelfile
    export_gguf = import_module(f"{package}.export.gguf")
    prompts = [GENERAL_PROMPT]
    if args.rows:
        lines = args.rows.read_text().splitlines()[:2]
        prompts = [json.loads(line)["prompt"] for line in lines] + prompts

    merged = AutoModelForCausalLM.from_pretrained(args.merged, dtype=torch.float32).eval()
    merged_tokenizer = AutoTokenizer.from_pretrained(args.merged)
    merged_config = merged.config
    reference = answers(merged, merged_tokenizer, prompts)
    del merged
    report = {
        "merged_mib": round((args.merged / "model.safetensors").stat().st_size / 2**20, 1),
        "reference": [{"stopped": r["stopped"], "text": r["text"]} for r in reference],
        "types": {},
    }
    for quant in args.types.split(","):
        path = args.work / f"model-{quant}.gguf"
        figures = timed_conversion(args.src, package, args.merged, path, quant)
        figures["size_mib"] = round(path.stat().st_size / 2**20, 1)
        figures["pre"] = gguf.GGUFReader(path).fields["tokenizer.ggml.pre"].contents()
        start = time.perf_counter()
        config = export_gguf.transformers_config(path, merged_config)  # as export parity reads it
        model = AutoModelForCausalLM.from_pretrained(
            args.work, gguf_file=path.name, dtype=torch.float32, config=config
        ).eval()
        stops = export_gguf.llama_cpp_stop_ids(gguf.GGUFReader(path))
        model.generation_config.eos_token_id = sorted(stops)
        tokenizer = AutoTokenizer.from_pretrained(args.work, gguf_file=path.name)
        figures["load_seconds"] = round(time.perf_counter() - start, 1)
        runs = answers(model, tokenizer, prompts)
        del model
        figures["same_prompt_ids"] = all(
            r["prompt_ids"] == ref["prompt_ids"] for r, ref in zip(runs, reference, strict=True)
        )
        figures["identical_answers"] = [
            r["ids"] == ref["ids"] for r, ref in zip(runs, reference, strict=True)
        ]
        figures["stopped"] = [r["stopped"] for r in runs]
        figures["texts"] = [r["text"] for r in runs]
        if args.llama_cpp:
            figures["llama_cpp"] = llama_cpp_answers(
                args.llama_cpp, path, merged_tokenizer, prompts, reference
            )
        report["types"][quant] = figures
        print(quant, json.dumps(figures, ensure_ascii=False), flush=True)
    modelfile = write_modelfile(path, args.merged)
    report["modelfile"] = modelfile.read_text()
    print(report["modelfile"])
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
