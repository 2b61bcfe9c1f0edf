"""The export stage's work: write each export `export.formats` asks for from the selected
model, generate the first `export.parity_rows` test rows with the selected model as eval loads
it (the reference) and with every export loaded back the way its users load it, and write the
parity figures (JSON, the `dvc exp show` columns) and their table (Markdown)."""

import gc
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..document import Heading, Para, Table, write_markdown
from ..errors import StageError
from ..evaluation.backend import load_for_generation
from ..io import read_jsonl, write_json
from ..models.loading import load_model_with_adapter, load_tokenizer, use_bf16
from ..params import ExportParams, Params
from ..selection.guardrails import ranking_metric
from .gguf import write_ggufs
from .merged import save_merged
from .ollama import model_chat, write_modelfile
from .parity import generate, load_export, parity_failures, parity_row

GGUF_NAME = __name__.split(".")[0]  # general.name, shown by llama.cpp and Ollama
REFERENCE = "adapter"
"""The selected model as eval and select loaded it (base + adapter, merged in memory)."""


@dataclass(frozen=True)
class ExportFiles:
    """What the export stage reads and writes: `root` (emptied first) holds `merged` and
    `gguf`; `report` the parity figures and `table` the same as Markdown."""

    base: Path
    selected: Path
    test_split: Path
    root: Path
    merged: Path
    gguf: Path
    report: Path
    table: Path


@dataclass(frozen=True)
class Exported:
    """The parity report, one printable line per export and what went wrong: `error` is set
    when parity failed and `export.on_parity_failure` is `fail`."""

    report: dict
    lines: list[str] = field(default_factory=list)
    error: str | None = None


def write_exports(params: ExportParams, files: ExportFiles) -> tuple[dict[str, Path], dict]:
    """Every export `params` asks for, by its report name, and how the GGUF files were
    written; the adapter is merged once."""
    if not params.formats:
        return {}, {}
    exports, details = {}, {}
    model = load_model_with_adapter(files.selected, files.base)
    with tempfile.TemporaryDirectory() as scratch:
        source = None
        if "gguf" in params.formats and not ("merged" in params.formats and params.dtype == "f32"):
            # GGUF is written from float32 weights, so f16/q8_0 round the model once, not
            # twice; saved before the in-place cast below
            source = save_merged(model, Path(scratch), "f32", files.base)
        if "merged" in params.formats:
            exports[f"merged_{params.dtype}"] = save_merged(
                model, files.merged, params.dtype, files.base
            )
        del model
        if "gguf" in params.formats:
            source = source or exports["merged_f32"]
            paths = {quant: files.gguf / f"model-{quant}.gguf" for quant in params.gguf_types}
            written = write_ggufs(source, paths, name=GGUF_NAME)
            exports |= {f"gguf_{quant}": path for quant, path in paths.items()}
            chat = model_chat(source)
            write_modelfile(paths[params.gguf_types[-1]], source, chat)
            details = written.report() | {
                "modelfile_chat_format": chat.family,
                "modelfile_system": chat.system,
                "modelfile_unchecked": list(chat.unchecked),
            }
    return exports, details


def size_mb(path: Path) -> float:
    files = [path] if path.is_file() else [f for f in path.rglob("*") if f.is_file()]
    return round(sum(f.stat().st_size for f in files) / 2**20, 1)


def check_parity(params: Params, exports: dict[str, Path], files: ExportFiles) -> dict:
    """The parity figures of the reference and every export, with each export's verdict."""
    rows = read_jsonl(files.test_split)[: params.export.parity_rows]
    prompts = [row["prompt"] for row in rows]
    compute = torch.bfloat16 if use_bf16(params.eval.bf16) else torch.float32
    budget, batch = params.eval.max_new_tokens_task, params.eval.batch_size

    model = load_for_generation(files.selected, files.base, params.eval)
    tokenizer = load_tokenizer(files.base)
    reference = generate(model, tokenizer, prompts, budget, batch, REFERENCE)
    architecture = (model.config, tokenizer)  # what a GGUF file is read back into
    metric = ranking_metric(params.task)
    figures = {REFERENCE: parity_row(rows, reference, reference, params.task)}
    verdicts = {}
    for name, path in exports.items():
        del model
        gc.collect()
        model, export_tokenizer = load_export(path, compute, architecture)
        run = generate(model, export_tokenizer, prompts, budget, batch, name)
        figures[name] = parity_row(rows, run, reference, params.task)
        tolerance = params.export.parity_tolerance
        failures = parity_failures(figures[name], figures[REFERENCE], metric, tolerance)
        verdicts[name] = failures
        figures[name] |= {"passed": not failures, "size_mb": size_mb(path)}
    return {
        "rows": len(rows),
        "metric": metric,
        "tolerance": params.export.parity_tolerance,
        "parity_passed": not any(verdicts.values()),
        "exports": figures,
        "failures": {name: failures for name, failures in verdicts.items() if failures},
    }


def report_blocks(report: dict) -> list:
    metric = report["metric"]
    columns = ["export", "size (MB)", metric, "stop rate", "agreement", "same prompts", "parity"]
    table = [
        [
            name,
            f"{row['size_mb']:.0f}" if "size_mb" in row else "",
            row[metric],
            row["stop_rate"],
            row["agreement"],
            row["same_prompts"],
            "reference" if name == REFERENCE else ("pass" if row["passed"] else "FAIL"),
        ]
        for name, row in report["exports"].items()
    ]
    why = [Para(f"**{name}**: {'; '.join(fails)}") for name, fails in report["failures"].items()]
    return [
        Heading("Export parity", 1),
        Para(
            f"The first {report['rows']} test rows, greedy, each export with its own tokenizer "
            f"and chat template; agreement = identical answers to the {REFERENCE}'s. An export "
            f"passes within {report['tolerance']} of the {REFERENCE} in {metric} and stop rate, "
            "with the training prompt tokens."
        ),
        Table(columns, table),
        *why,
    ]


def summary(report: dict, on_failure: str, files: ExportFiles) -> Exported:
    """The report with its printable lines and, where parity failed and `on_failure` is
    `fail`, the error that stops the stage."""
    metric = report["metric"]
    lines = [
        f"{name}: {metric} {row[metric]}, stop rate {row['stop_rate']}, "
        f"agreement {row['agreement']}" + ("" if row.get("passed", True) else "  [FAIL]")
        for name, row in report["exports"].items()
    ]
    if not report["failures"]:
        return Exported(report, lines)
    failures = "; ".join(f"{name}: {', '.join(f)}" for name, f in report["failures"].items())
    if on_failure == "fail":
        return Exported(report, lines, f"export parity failed ({failures}); see {files.table}")
    return Exported(report, [*lines, f"parity failed, marked in {files.report}: {failures}"])


def export_selected(params: Params, files: ExportFiles) -> Exported:
    """Write the exports into an emptied `files.root`, check their parity with the selected
    model and write the report and its table."""
    if not (files.selected / "selection.json").exists():
        raise StageError(f"{files.selected} holds no selected model: run `dvc repro select` first")
    shutil.rmtree(files.root, ignore_errors=True)
    exports, gguf = write_exports(params.export, files)
    report = check_parity(params, exports, files) | ({"gguf": gguf} if gguf else {})
    write_json(files.report, report)
    write_markdown(report_blocks(report), files.table)
    return summary(report, params.export.on_parity_failure, files)
