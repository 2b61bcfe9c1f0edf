"""Near-duplicate clustering on Spark (curate.engine: spark), with the same decisions as
data/dedup.py by construction.

Spark does the work that grows with the data: it reads the rows' texts (spilled to Parquet by
pass 1), computes the MinHash signatures and LSH band keys with dedup.py's own functions,
groups the keys so each bucket meets in one place, and turns every bucket into candidate pairs
with dedup.py's pair rule. The driver gets the pairs and the signatures of the rows in them (a
row with no candidate is its own cluster) and applies dedup.py's representative rule, in file
order, to those rows only. Same signatures, buckets, pairs and rule: the same kept rows and
duplicate records as curate.engine: local.

The texts are spilled under tempfile's directory ($TMPDIR): on a cluster of several machines,
point TMPDIR at storage every worker reads, and install the project on the workers.
datatrove's MinhashDedup would not give these decisions (other shingles, hashes and
normalisation, no verification of candidates, transitive clusters).
"""

import importlib
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import StageError
from . import dedup

EXTRA = "scale"
PACKAGES = {"spark": "pyspark"}  # curate.engine -> the package it imports
SPILL_ROWS = 1 << 14  # rows per Parquet file of spilled texts: the engine's read tasks


def require(engine: str):
    """Import the engine's package, or say which extra installs it (and that Spark needs
    Java)."""
    try:
        module = importlib.import_module(PACKAGES[engine])
    except ImportError as error:
        raise StageError(
            f"curate.engine={engine} needs the `{PACKAGES[engine]}` package, which is not "
            f"installed ({error}): pip install -e '.[{EXTRA}]', or set curate.engine: local"
        ) from None
    if engine == "spark" and not java_found():
        raise StageError(
            "curate.engine=spark needs Java 17 or later (Spark runs on the JVM): no `java` on "
            "PATH and JAVA_HOME is not set; install a JDK, or set curate.engine: local"
        )
    return module


def java_found() -> bool:
    return bool(os.environ.get("JAVA_HOME") or shutil.which("java"))


class TextSpill:
    """Pass 1 writes (row, text) of every dedup candidate here, so the engine reads the texts
    from files (on a cluster: storage every worker can read) and the driver holds none."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.ids: list[int] = []
        self.texts: list[str] = []
        self.files = 0

    def add(self, ids: Sequence[int], texts: Sequence[str]) -> None:
        self.ids += ids
        self.texts += texts
        if len(self.ids) >= SPILL_ROWS:
            self.flush()

    def flush(self) -> None:
        if not self.ids:
            return
        import pyarrow as pa  # the scale extra's: curate imports this module without it
        import pyarrow.parquet as pq

        table = pa.table({"row": pa.array(self.ids, pa.int64()), "text": self.texts})
        pq.write_table(table, self.directory / f"part-{self.files:05d}.parquet")
        self.files += 1
        self.ids, self.texts = [], []


# ---------------------------------------------------------------- per-batch work (on workers)


def sign(ids: np.ndarray, texts: Sequence[str], wanted: np.ndarray, num_perm: int):
    """(ids, signatures) of the rows of this batch that are in `wanted` (sorted ids)."""
    keep = np.isin(ids, wanted, assume_unique=True)
    ids = ids[keep]
    texts = [text for text, k in zip(texts, keep, strict=True) if k]
    return ids, dedup.signatures(texts, num_perm)


def band_records(ids: np.ndarray, sigs: np.ndarray, bands: int, per_band: int):
    """(band, key, row) for every row and band: the records the engine shuffles by bucket."""
    keys = [
        dedup.band_keys(sigs, band, multipliers)
        for band, multipliers in enumerate(dedup.band_multipliers(bands, per_band))
    ]
    band = np.repeat(np.arange(bands, dtype=np.int32), len(ids))
    key = np.concatenate(keys) if keys else np.empty(0, np.uint64)
    return band, key.view(np.int64), np.tile(ids, bands)


def bucket_pairs(buckets: Sequence[Sequence[int]]) -> np.ndarray:
    """Candidate pairs of the buckets (lists of row ids) with more than one row."""
    found = [dedup.members_pairs(np.sort(np.asarray(m))) for m in buckets if len(m) > 1]
    return np.concatenate(found) if found else np.empty((0, 2), dtype=np.int64)


# ---------------------------------------------------------------- engines


def spark_pairs(spill: Path, wanted: np.ndarray, num_perm: int, bands: int, per_band: int):
    """(candidate pairs, the row ids in them, sorted, and their signatures), computed on Spark:
    the session spark-submit configures, else a local one on every core of this machine."""
    require("spark")
    import pyarrow as pa
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    local_workers_env()
    builder = SparkSession.builder.appName("curate-dedup")
    spark = builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")

    def sign_batches(batches):
        for batch in batches:
            texts = batch.column("text").to_pylist()
            ids, sigs = sign(batch.column("row").to_numpy(), texts, wanted, num_perm)
            yield pa.record_batch({"row": ids, "sig": [sig.tobytes() for sig in sigs]})

    def key_batches(batches):
        for batch in batches:
            sigs = unpack(batch.column("sig"), num_perm)
            band, key, row = band_records(batch.column("row").to_numpy(), sigs, bands, per_band)
            yield pa.record_batch({"band": band, "key": key, "row": row})

    def pair_batches(batches):
        for batch in batches:
            pairs = bucket_pairs(batch.column("rows").to_pylist())
            yield pa.record_batch({"i": pairs[:, 0], "j": pairs[:, 1]})

    signed = spark.read.parquet(str(spill)).mapInArrow(sign_batches, "row long, sig binary")
    signed = signed.cache()
    keyed = signed.mapInArrow(key_batches, "band int, key long, row long")
    buckets = keyed.groupBy("band", "key").agg(F.collect_list("row").alias("rows"))
    buckets = buckets.filter(F.size("rows") > 1)
    found = buckets.mapInArrow(pair_batches, "i long, j long").toArrow()
    pairs = np.column_stack([found["i"].to_numpy(), found["j"].to_numpy()]).astype(np.int64)
    pairs = np.unique(pairs, axis=0)
    needed = np.unique(pairs)

    def pick_batches(batches):
        for batch in batches:
            yield batch.filter(pa.array(np.isin(batch.column("row").to_numpy(), needed)))

    picked = signed.mapInArrow(pick_batches, "row long, sig binary").toArrow()
    signed.unpersist()
    ids = picked["row"].to_numpy()
    order = np.argsort(ids)
    return pairs, ids[order], unpack(picked["sig"], num_perm)[order]


def unpack(column, num_perm: int) -> np.ndarray:
    """A column of signatures stored as bytes -> uint32 array (rows, num_perm)."""
    data = b"".join(column.to_pylist())
    return np.frombuffer(data, np.uint32).reshape(-1, num_perm)


def local_workers_env() -> None:
    """Python workers that Spark starts on this machine run this interpreter and import this
    package as the driver does (tests import it from src/ without installing it). Workers on
    other machines need the project installed in the same environment."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    src = str(Path(__file__).resolve().parents[2])
    paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if src not in paths:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [src, *paths]))


ENGINES = {"spark": spark_pairs}


def cluster(
    engine: str,
    spill: Path,
    rows: np.ndarray,
    num_perm: int,
    dup_threshold: float,
    group_threshold: float,
) -> dedup.Clusters:
    """What `dedup.cluster(dedup.signatures(texts of rows), ...)` returns, the signatures and
    candidate pairs computed on `engine` from the texts spilled for `rows` (sorted row ids):
    positions in the result index `rows`. Rows with no candidate are their own cluster, so
    the representative rule runs on the rows in a pair only (in file order, as locally)."""
    n = len(rows)
    if n < 2:
        return dedup.Clusters({}, list(range(n)))
    bands, per_band = dedup.band_params(group_threshold, num_perm)
    pairs, needed, sigs = ENGINES[engine](spill, rows, num_perm, bands, per_band)
    position = np.searchsorted(rows, needed)  # of each row in a pair, in `rows`
    compact = np.searchsorted(needed, pairs)
    local = dedup.cluster_pairs(sigs, compact, dup_threshold, group_threshold)
    duplicate_of = {
        int(position[i]): (int(position[root]), similarity)
        for i, (root, similarity) in local.duplicate_of.items()
    }
    group_of = list(range(n))
    for i, leader in enumerate(local.group_of):
        group_of[position[i]] = int(position[leader])
    return dedup.Clusters(duplicate_of, group_of)
