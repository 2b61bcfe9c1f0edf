"""curate's dedup on one machine (curate.engine: local) vs on Spark (curate.engine: spark).

For each size, curate_scale.py's seeded generator writes one chat file (5 % planted near
duplicates, 2 % exact, shuffled), then each engine runs in its own process: the stage's pass 1
(`Curator.add_file` + `finish`: parsing, schema and quality checks, exact dedup, signatures,
near-dup clustering) without the tokenizer (token counting costs the same on both paths and
is left out, so the difference is the dedup). Reported per size and engine: wall seconds of
pass 1 and of `finish` (where Spark's job runs), peak RSS summed over the process tree (the
driver, Spark's JVM and its Python workers; psutil every 250 ms), and whether the decisions
(every duplicate with its kind, kept row and similarity, every group) equal the local ones.

    python benchmarks/dedup_engines.py --bake /tmp/x --rows 100000,1000000 --out results.json
    python benchmarks/dedup_engines.py --project /tmp/x/bench-curate --rows 100000

The interpreter running this script runs the engines: it needs the project's requirements
and pyspark (the project's `scale` extra) with Java 17+.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import curate_scale  # noqa: E402  (the generator, bake and RSS polling of the curate benchmark)

ENGINES = ("local", "spark")


def run_engine(project: Path, engine: str, raw: Path) -> dict:
    """In this process: pass 1 of curate on `raw` with curate.engine = `engine`."""
    sys.path.insert(0, str(project / "src"))
    module = curate_scale.module_name(project)
    curation = __import__(f"{module}.data.curator", fromlist=["Curator"])
    params = __import__(f"{module}.params", fromlist=["CurateParams"])
    io = __import__(f"{module}.io", fromlist=["iter_lines"])
    cfg = params.CurateParams(engine=engine)
    started = time.perf_counter()
    curator = curation.Curator(params.TaskParams(), cfg)
    curator.add_file(str(raw), io.iter_lines(raw))
    screened = time.perf_counter()
    decisions = curator.finish()
    done = time.perf_counter()
    near = sum(1 for kind, _, _ in decisions.duplicate_of.values() if kind == "near")
    verdict = json.dumps(
        [sorted(decisions.duplicate_of.items()), sorted(decisions.group_of.items())]
    )
    return {
        "engine": engine,
        "pass1_s": round(done - started, 2),
        "finish_s": round(done - screened, 2),
        "near": near,
        "exact": len(decisions.duplicate_of) - near,
        "decisions_sha256": hashlib.sha256(verdict.encode()).hexdigest(),
    }


def measure(project: Path, engine: str, raw: Path, python: str) -> dict:
    """Run one engine in a child process; add its wall time and peak tree RSS."""
    command = [python, __file__, "--child", engine, "--project", str(project), "--raw", str(raw)]
    with tempfile.TemporaryFile("w+") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.PIPE, text=True)
        peak = [0]
        poller = threading.Thread(target=curate_scale.poll_rss, args=(process, peak), daemon=True)
        poller.start()
        _, stderr = process.communicate()
        wall = time.perf_counter() - started
        poller.join()
        if process.returncode != 0:
            sys.exit(f"{engine} failed (exit {process.returncode}):\n{stderr[-3000:]}")
        out.seek(0)
        result = json.loads(out.read().strip().splitlines()[-1])
    return result | {"process_wall_s": round(wall, 2), "peak_rss_mb": round(peak[0] / 2**20)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--project", type=Path, help="a baked project")
    where.add_argument("--bake", type=Path, help="bake a fresh project into this directory")
    parser.add_argument("--rows", default="100000", help="comma-separated sizes")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--python", default=sys.executable, help="interpreter for the engines")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("--raw", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_engine(args.project.resolve(), args.child, args.raw)))
        return
    project = (curate_scale.bake(args.bake.resolve()) if args.bake else args.project).resolve()
    results = []
    with tempfile.TemporaryDirectory(prefix="dedup-bench-") as work:
        for n in (int(size) for size in args.rows.split(",")):
            raw = Path(work) / "bench.jsonl"
            started = time.perf_counter()
            curate_scale.write_rows(raw, n, args.seed, 0.05, 0.02)
            print(f"rows={n}: generated in {time.perf_counter() - started:.0f} s", flush=True)
            for engine in args.engines.split(","):
                result = {"rows": n} | measure(project, engine, raw, args.python)
                results.append(result)
                print(json.dumps(result), flush=True)
            local = {r["rows"]: r["decisions_sha256"] for r in results if r["engine"] == "local"}
            for r in results:
                if r["rows"] in local:
                    r["same_as_local"] = r["decisions_sha256"] == local[r["rows"]]
    print("\n| rows | engine | pass 1 s | of which finish s | peak RSS MB | near | exact | same |")
    for r in results:
        print(
            f"| {r['rows']:,} | {r['engine']} | {r['pass1_s']} | {r['finish_s']} | "
            f"{r['peak_rss_mb']} | {r['near']} | {r['exact']} | {r.get('same_as_local')} |"
        )
    if args.out:
        summary = {"project": str(project), "cpus": os.cpu_count(), "results": results}
        args.out.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
