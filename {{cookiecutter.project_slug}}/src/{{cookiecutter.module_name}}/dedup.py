"""Near-duplicate clustering: MinHash signatures of word 3-gram shingles, candidate pairs from
datasketch's MinHash LSH, and each candidate verified on its signature before it counts.

One LSH index at the lower `group_threshold` finds both relations:
- near duplicates (estimated Jaccard >= `dup_threshold`): one representative per cluster is
  kept, the first in file order;
- related rows (>= `group_threshold`): same group, which the split keeps in one split.
"""

from dataclasses import dataclass

import numpy as np
import xxhash
from datasketch import MinHash, MinHashLSH

from .textnorm import ngrams, words

SHINGLE_WORDS = 3
SCHEME = "affine32"  # datasketch 2 default: 32-bit hash values


def shingles(text: str) -> list[bytes]:
    return list({" ".join(gram).encode() for gram in ngrams(words(text), SHINGLE_WORDS)})


def _hash32(data: bytes) -> int:
    return xxhash.xxh32_intdigest(data)


def signatures(texts: list[str], num_perm: int, seed: int = 1) -> np.ndarray:
    """One MinHash signature per text, shape (len(texts), num_perm), uint32."""
    if not texts:
        return np.empty((0, num_perm), dtype=np.uint32)
    minhashes = MinHash.bulk(
        [shingles(text) for text in texts],
        num_perm=num_perm,
        seed=seed,
        hashfunc=_hash32,
        scheme=SCHEME,
    )
    return np.stack([m.hashvalues for m in minhashes]).astype(np.uint32)


class UnionFind:
    """Components whose root is always the smallest index (the first row in file order)."""

    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, i: int) -> int:
        root = i
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[i] != root:
            self.parent[i], i = root, self.parent[i]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


@dataclass
class Clusters:
    duplicate_of: dict[int, tuple[int, float]]  # row -> (representative, similarity)
    group_of: list[int]  # row -> first row of its group


def cluster(
    sigs: np.ndarray, dup_threshold: float, group_threshold: float, progress=None
) -> Clusters:
    """Cluster rows by estimated Jaccard similarity of their signatures."""
    n, num_perm = sigs.shape
    lsh = MinHashLSH(
        threshold=min(dup_threshold, group_threshold),
        num_perm=num_perm,
        hashfunc=xxhash.xxh64_digest,
    )
    lean = [MinHash(num_perm=num_perm, hashvalues=row, scheme=SCHEME) for row in sigs]
    with lsh.insertion_session() as session:
        for i, minhash in enumerate(lean):
            session.insert(i, minhash, check_duplication=False)
    dups, groups = UnionFind(n), UnionFind(n)
    for i, minhash in enumerate(lean):
        candidates = np.fromiter((j for j in lsh.query(minhash) if j < i), dtype=np.int64)
        if progress is not None:
            progress(1)
        if candidates.size == 0:
            continue
        similarity = (sigs[candidates] == sigs[i]).mean(axis=1)
        for j, sim in zip(candidates.tolist(), similarity.tolist(), strict=True):
            if sim >= group_threshold:
                groups.union(i, j)
            if sim >= dup_threshold:
                dups.union(i, j)
    duplicate_of = {}
    for i in range(n):
        root = dups.find(i)
        if root != i:
            duplicate_of[i] = (root, float((sigs[i] == sigs[root]).mean()))
    return Clusters(duplicate_of, [groups.find(i) for i in range(n)])
