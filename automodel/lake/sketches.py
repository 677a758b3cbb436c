"""Value sketches for joinability: MinHash signatures of a key column's distinct values.

Signatures are plain arrays kept in the catalog; the LSH Ensemble (which can only be built once)
is rebuilt from them whenever the catalog changes. The ensemble answers "which lake key columns
probably contain at least t of my values" and returns near-threshold false positives, so callers
re-rank its candidates by exact containment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSHEnsemble

NUM_PERM = 128
SEED = 1
SCHEME = "affine32"  # datasketch 2.x hashing scheme; stored signatures are only comparable within one scheme
CONTAINMENT_THRESHOLD = 0.3


def signature(values) -> np.ndarray:
    """MinHash hash values (uint64, NUM_PERM long) of a collection of distinct strings."""
    return _minhash(values).hashvalues.astype(np.uint64)


def signature_bytes(values) -> bytes:
    return signature(values).tobytes()


def value_hashes(values) -> np.ndarray:
    """Sorted, distinct 64-bit hashes of string values: a compact exact-membership set.

    pandas' hash_array uses a fixed key, so hashes are stable across processes and versions of
    this code; at 64 bits a false match between a user's and a lake's values is ~1e-11 likely.
    """
    import pandas as pd

    array = np.asarray([str(v) for v in values], dtype=object)
    return np.unique(pd.util.hash_array(array, categorize=False)).astype(np.uint64)


def contained(user_hashes: np.ndarray, lake_sorted: np.ndarray) -> np.ndarray:
    """For each user hash, whether it is in the lake key's sorted hash set."""
    if not len(lake_sorted) or not len(user_hashes):
        return np.zeros(len(user_hashes), dtype=bool)
    positions = np.minimum(np.searchsorted(lake_sorted, user_hashes), len(lake_sorted) - 1)
    return lake_sorted[positions] == user_hashes


def from_bytes(blob: bytes) -> LeanMinHash:
    return LeanMinHash(seed=SEED, hashvalues=np.frombuffer(blob, dtype=np.uint64), scheme=SCHEME)


@dataclass
class SketchIndex:
    """An LSH Ensemble over (key id, signature, distinct-value count) entries."""

    ensemble: MinHashLSHEnsemble | None
    sizes: dict[str, int]

    @classmethod
    def build(cls, entries: list[tuple[str, bytes, int]], threshold: float = CONTAINMENT_THRESHOLD) -> SketchIndex:
        entries = [(key, blob, size) for key, blob, size in entries if size > 0]
        if not entries:
            return cls(None, {})
        ensemble = MinHashLSHEnsemble(threshold=threshold, num_perm=NUM_PERM, num_part=8)
        ensemble.index((key, from_bytes(blob), size) for key, blob, size in entries)
        return cls(ensemble, {key: size for key, _, size in entries})

    def query(self, values) -> set[str]:
        """Key ids whose values probably contain at least the threshold share of ``values``."""
        values = list(values)
        if self.ensemble is None or not values:
            return set()
        sketch = LeanMinHash(_minhash(values))
        return set(self.ensemble.query(sketch, len(values)))


def _minhash(values) -> MinHash:
    sketch = MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)
    sketch.update_batch([str(v).encode("utf8") for v in values])
    return sketch
