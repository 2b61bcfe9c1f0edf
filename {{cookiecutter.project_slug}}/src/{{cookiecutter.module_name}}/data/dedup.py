"""Near-duplicate clustering: datasketch MinHash signatures of word 3-gram shingles, LSH
banding with datasketch's optimal (bands, rows) for the threshold, and every candidate pair
verified on its signatures before it counts.

The banding is done on the whole signature matrix with numpy (one sort per band) rather than
with `MinHashLSH.insert`/`query` row by row: the same candidate pairs (up to a cap in very
large buckets), ~20x faster at 100k rows.

One index at the lower `group_threshold` finds both relations:
- near duplicates (estimated Jaccard >= `dup_threshold`): one representative per cluster is
  kept, the first in file order;
- related rows (>= `group_threshold`): same group, which the split keeps in one split.

Clusters are formed around a representative, not by transitive chains: in file order, a row
joins the most similar earlier representative among its candidates when that similarity
reaches the threshold, else it represents a new cluster. Every member is similar to its
representative, so templated rows that each resemble the next cannot chain into one group
holding most of the data (which no split could place).
"""

import functools
from dataclasses import dataclass

import numpy as np
import xxhash
from datasketch import MinHash
from datasketch.lsh import _optimal_param
from datasketch.minhash import _fmix

from .textnorm import ngrams, words

SHINGLE_WORDS = 3
SCHEME = "affine32"  # datasketch 2 default: 32-bit hash values


def shingles(text: str) -> list[str]:
    """Word 3-grams of the normalised text (a text of fewer words is one shingle)."""
    return [" ".join(gram) for gram in ngrams(words(text), SHINGLE_WORDS)]


@functools.cache
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutations h -> a*h + b (mod 2**32) for (num_perm, seed)."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signatures(texts: list[str], num_perm: int, seed: int = 1, block: int = 512) -> np.ndarray:
    """MinHash signatures, shape (len(texts), num_perm), uint32: exactly what datasketch's
    `MinHash(num_perm, seed, hashfunc=xxh32, scheme="affine32").update_batch(shingles)` gives,
    computed for a block of texts at once instead of one MinHash object per text."""
    a, b = permutations(num_perm, seed)
    out = np.full((len(texts), num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
    hash32 = xxhash.xxh32_intdigest
    for begin in range(0, len(texts), block):
        per_text = [[hash32(g.encode()) for g in shingles(t)] for t in texts[begin : begin + block]]
        lengths = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
        present = lengths > 0
        if not present.any():
            continue
        hashes = np.fromiter(
            (h for row in per_text for h in row), dtype=np.uint32, count=int(lengths.sum())
        )
        permuted = _fmix(hashes, 32)[:, None] * a + b  # uint32 arithmetic wraps mod 2**32
        offsets = np.r_[0, np.cumsum(lengths[present])[:-1]]
        rows = np.flatnonzero(present) + begin
        out[rows] = np.minimum.reduceat(permuted, offsets, axis=0)
    return out


@dataclass
class Clusters:
    duplicate_of: dict[int, tuple[int, float]]  # row -> (representative, similarity)
    group_of: list[int]  # row -> first row of its group


MAX_BUCKET_PAIRS = 32  # in a big bucket each row is compared with the first 32 rows only


def band_params(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band) minimising false positives + false negatives at `threshold`."""
    return _optimal_param(threshold, num_perm, 0.5, 0.5)


def band_multipliers(bands: int, rows: int) -> list[np.ndarray]:
    """Per band, the odd 64-bit multipliers that hash its `rows` signature values to one key."""
    rng = np.random.default_rng(0)
    return [rng.integers(1, 2**63, size=rows, dtype=np.uint64) | np.uint64(1) for _ in range(bands)]


def band_keys(sigs: np.ndarray, band: int, multipliers: np.ndarray) -> np.ndarray:
    """The key of every row's `band`: rows sharing a key are candidates, shape (len(sigs),)."""
    rows = len(multipliers)
    block = sigs[:, band * rows : (band + 1) * rows].astype(np.uint64)
    return (block * multipliers).sum(axis=1)  # wraps mod 2**64: a hash of the band


def bucket_pairs(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """(i, j) pairs with i > j of row ids sharing a key (of one band), shape (P, 2)."""
    order = np.lexsort((ids, keys))  # by key, then by row id
    sorted_keys, sorted_ids = keys[order], ids[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    sizes = np.diff(np.r_[starts, len(keys)])
    found = [
        members_pairs(sorted_ids[start : start + size])
        for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist(), strict=True)
    ]
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


def members_pairs(members: np.ndarray) -> np.ndarray:
    """The pairs one bucket yields, its row ids `members` sorted: each row with the earlier
    ones, the first MAX_BUCKET_PAIRS of them in a big bucket; shape (P, 2), i > j."""
    found = []
    for k in range(1, len(members)):
        earlier = members[: min(k, MAX_BUCKET_PAIRS)]
        found.append(np.column_stack([np.full(len(earlier), members[k]), earlier]))
    return np.concatenate(found).astype(np.int64)


def candidate_pairs(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(i, j) pairs with i > j that share at least one band, shape (P, 2)."""
    ids = np.arange(len(sigs))
    found = [
        bucket_pairs(band_keys(sigs, band, multipliers), ids)
        for band, multipliers in enumerate(band_multipliers(bands, rows))
    ]
    return np.unique(np.concatenate(found), axis=0)


def neighbours(pairs: np.ndarray, n: int) -> list[np.ndarray]:
    """Row -> its earlier candidate rows (the j of every (i, j) pair with i > j)."""
    order = np.argsort(pairs[:, 0], kind="stable")
    rows, earlier = pairs[order, 0], pairs[order, 1]
    bounds = np.searchsorted(rows, np.arange(n + 1))
    return [earlier[bounds[i] : bounds[i + 1]] for i in range(n)]


def representatives(
    sigs: np.ndarray, candidates: list[np.ndarray], threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """(representative, similarity to it) per row: in row order, a row joins the most similar
    representative of its candidates' clusters when the similarity reaches `threshold`, else
    it represents its own cluster (similarity 1)."""
    n = len(sigs)
    leader = np.arange(n)
    similarity = np.ones(n)
    for i in range(n):
        if not len(candidates[i]):
            continue
        leaders = np.unique(leader[candidates[i]])
        sims = (sigs[leaders] == sigs[i]).mean(axis=1)
        best = int(np.argmax(sims))  # ties: the earliest representative (np.unique sorts)
        if sims[best] >= threshold:
            leader[i], similarity[i] = leaders[best], sims[best]
    return leader, similarity


def cluster(sigs: np.ndarray, dup_threshold: float, group_threshold: float) -> Clusters:
    """Cluster rows by estimated Jaccard similarity of their signatures to a representative."""
    n, num_perm = sigs.shape
    if n < 2:
        return Clusters({}, list(range(n)))
    pairs = candidate_pairs(sigs, *band_params(group_threshold, num_perm))
    return cluster_pairs(sigs, pairs, dup_threshold, group_threshold)


def cluster_pairs(
    sigs: np.ndarray, pairs: np.ndarray, dup_threshold: float, group_threshold: float
) -> Clusters:
    """Clusters from the candidate `pairs` (i > j) of rows with signatures `sigs`."""
    n = len(sigs)
    candidates = neighbours(pairs, n)
    dup_leader, dup_similarity = representatives(sigs, candidates, dup_threshold)
    group_leader, _ = representatives(sigs, candidates, group_threshold)
    duplicate_of = {
        i: (int(dup_leader[i]), float(dup_similarity[i])) for i in range(n) if dup_leader[i] != i
    }
    return Clusters(duplicate_of, group_leader.tolist())
