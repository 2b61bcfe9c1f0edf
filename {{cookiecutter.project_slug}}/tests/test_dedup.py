"""Near-duplicate machinery: signatures equal datasketch's, banding finds the pairs the
threshold asks for, clusters keep the first row, and the parallel pass 1 equals the serial."""

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import xxhash
from datasketch import MinHash

from {{ cookiecutter.module_name }}.data import dedup
from {{ cookiecutter.module_name }}.data.curator import Curator
from {{ cookiecutter.module_name }}.data.masking import tokenizer_counter
from {{ cookiecutter.module_name }}.data.workers import worker_pool
from {{ cookiecutter.module_name }}.params import CurateParams, TaskParams

WORDS = [f"w{i}" for i in range(3000)]


def random_texts(n: int, length: int = 40, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=length)) for _ in range(n)]


def test_signatures_equal_datasketch_minhash() -> None:
    texts = random_texts(20) + ["", "two words", "Punctuation, CASE and   spaces!"]
    ours = dedup.signatures(texts, num_perm=64)
    reference = MinHash.bulk(
        [[gram.encode() for gram in dedup.shingles(text)] for text in texts],
        num_perm=64,
        seed=1,
        hashfunc=xxhash.xxh32_intdigest,
        scheme=dedup.SCHEME,
    )
    for row, minhash in zip(ours, reference, strict=True):
        assert np.array_equal(row, minhash.hashvalues)


def test_shingles_ignore_case_and_punctuation() -> None:
    assert dedup.shingles("Hello, World! How are") == dedup.shingles("hello world how ARE")
    assert dedup.shingles("one two") == ["one two"]
    assert dedup.shingles("  ") == []


def edit(text: str, rng: random.Random, changes: int) -> str:
    tokens = text.split()
    for _ in range(changes):
        tokens[rng.randrange(len(tokens))] = rng.choice(WORDS)
    return " ".join(tokens)


def test_cluster_finds_planted_near_duplicates_and_nothing_else() -> None:
    rng = random.Random(1)
    base = random_texts(400, length=60, seed=2)
    copies = [edit(text, rng, 1) for text in base[:50]]  # one word changed: Jaccard ~0.9
    sigs = dedup.signatures(base + copies, num_perm=128)
    clusters = dedup.cluster(sigs, dup_threshold=0.7, group_threshold=0.5)
    expected = {400 + k: k for k in range(50)}
    assert {i: root for i, (root, _) in clusters.duplicate_of.items()} == expected
    assert all(0.7 <= sim < 1 for _, sim in clusters.duplicate_of.values())


def test_cluster_keeps_the_first_row_of_a_chain() -> None:
    text = random_texts(1, length=80, seed=3)[0]
    sigs = dedup.signatures([text + " tail", text, text + " other end"], num_perm=128)
    clusters = dedup.cluster(sigs, dup_threshold=0.7, group_threshold=0.5)
    assert {i: root for i, (root, _) in clusters.duplicate_of.items()} == {1: 0, 2: 0}
    assert clusters.group_of == [0, 0, 0]


def test_groups_form_around_a_representative_not_a_chain() -> None:
    """Templated rows that each resemble the next (a sliding window over one word sequence)
    chained into one group under transitive clustering; around representatives, every member
    is similar to its representative and no group spans the chain."""
    sequence = random_texts(1, length=400, seed=6)[0].split()
    texts = [" ".join(sequence[12 * k : 12 * k + 60]) for k in range(25)]
    sigs = dedup.signatures(texts, num_perm=256)
    assert (sigs[0] == sigs[1]).mean() >= 0.5 > (sigs[0] == sigs[2]).mean()  # a chain
    clusters = dedup.cluster(sigs, dup_threshold=0.9, group_threshold=0.5)
    sizes = Counter(clusters.group_of)
    assert max(sizes.values()) <= 3, sizes
    for i, leader in enumerate(clusters.group_of):
        assert (sigs[i] == sigs[leader]).mean() >= 0.5


def test_group_without_duplicate_between_the_thresholds() -> None:
    text = random_texts(1, length=40, seed=4)[0].split()
    half = " ".join(text[:24] + random_texts(1, length=16, seed=5)[0].split())
    sigs = dedup.signatures([" ".join(text), half], num_perm=256)
    clusters = dedup.cluster(sigs, dup_threshold=0.9, group_threshold=0.3)
    assert clusters.duplicate_of == {}
    assert clusters.group_of == [0, 0]


def test_band_params_trade_bands_for_rows_with_the_threshold() -> None:
    bands_low, rows_low = dedup.band_params(0.5, 128)
    bands_high, rows_high = dedup.band_params(0.9, 128)
    assert bands_low * rows_low <= 128 and bands_high * rows_high <= 128
    assert rows_high > rows_low


def test_parallel_pass_equals_serial(tiny_model_dir: Path) -> None:
    rng = random.Random(6)
    texts = random_texts(300, length=30, seed=7)
    answers = random_texts(300, length=8, seed=8)
    answers += answers[:20] + answers[:5]  # near copies keep their original's answer
    rows = [
        {"messages": [{"role": "user", "content": t}, {"role": "assistant", "content": a}]}
        for t, a in zip(
            texts + [edit(t, rng, 1) for t in texts[:20]] + texts[:5], answers, strict=True
        )
    ]
    for k in range(5):  # exact duplicates of the first rows, answer included
        rows[320 + k] = rows[k]
    lines = [(n, json.dumps(row).encode()) for n, row in enumerate(rows, start=1)]
    task, cfg = TaskParams(), CurateParams()
    count = tokenizer_counter(tiny_model_dir)
    totals = sorted(lengths.total for lengths in count([row["messages"] for row in rows]))
    limit = totals[len(rows) // 2]  # half too long
    cut = limit - 4  # train.max_length below curate.max_tokens: some answers are cut
    serial = Curator(task, cfg, count, limit, max_length=cut)
    serial.add_file("a.jsonl", lines)
    with worker_pool(2, tiny_model_dir) as pool:
        parallel = Curator(task, cfg, None, limit, pool, cut)
        parallel.add_file("a.jsonl", lines)
        got = parallel.finish()
    want = serial.finish()
    assert got == want
    kinds = {kind for kind, _, _ in want.duplicate_of.values()}
    assert kinds == {"exact", "near"}
    assert set(want.reasons.values()) == {"too_long"} and want.tokens
    assert want.trainable.keys() == want.tokens.keys() - want.reasons.keys()
