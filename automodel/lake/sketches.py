"""Value sketches for joinability: 64-bit value hashes, MinHash signatures and an LSH Ensemble over them.

Everything here is numpy arrays, so a catalog can store the structures as ``.npy`` files and a
searcher can memory-map them instead of rebuilding anything:

- ``value_hashes``: sorted, distinct 64-bit hashes of a key's normalised values (exact membership);
- ``signature``: a MinHash of those hashes, ``NUM_PERM`` 32-bit minima under multiply-shift permutations
  (computed from the hashes in numpy: a key of 40,000 values takes milliseconds, not a Python loop);
- ``ContainmentLSH``: the LSH Ensemble of Zhu et al. (VLDB 2016, as datasketch implements it): keys
  partitioned by set size, and per partition the band count and width that minimise false positives
  plus false negatives for "contains at least ``CONTAINMENT_THRESHOLD`` of the query". The bands are
  compared directly on the signature matrix (a band matches when all its rows are equal), which is
  what datasketch's hash tables compute, without building a hash table per partition and band width.

The ensemble answers "which lake keys probably contain at least t of my values" and returns
near-threshold false positives, so callers re-rank its candidates by exact containment.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

NUM_PERM = 128
SEED = 1
CONTAINMENT_THRESHOLD = 0.3
NUM_PART = 8  # size partitions of the ensemble (datasketch's default for this use)
MAX_BAND_ROWS = 8  # datasketch's ``m``: the widest band considered
_CHUNK = 8192  # values per block when computing signatures: 8192 x 128 x 8 bytes = 8 MB of scratch


def _permutations() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SEED)
    multipliers = rng.integers(1, 2**63, size=NUM_PERM, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd: a bijection mod 2^64
    offsets = rng.integers(0, 2**63, size=NUM_PERM, dtype=np.uint64)
    return multipliers, offsets


_MULTIPLIERS, _OFFSETS = _permutations()


def value_hashes(values) -> np.ndarray:
    """Sorted, distinct 64-bit hashes of string values: a compact exact-membership set.

    pandas' hash_array uses a fixed key, so hashes are stable across processes and versions of
    this code; at 64 bits a false match between a user's and a lake's values is ~1e-11 likely.
    """
    return np.unique(hash_strings(values))


def hash_strings(values) -> np.ndarray:
    """One 64-bit hash per value, in order (duplicates kept), of the values as text."""
    array = np.asarray(values, dtype=object)
    if not len(array):
        return np.zeros(0, dtype=np.uint64)
    try:
        return pd.util.hash_array(array, categorize=False).astype(np.uint64)
    except TypeError:  # not all values are str: hash their text, as the user side does
        return pd.util.hash_array(np.asarray([str(v) for v in array], dtype=object), categorize=False).astype(np.uint64)


def signature(hashes: np.ndarray) -> np.ndarray:
    """MinHash of a set given as 64-bit value hashes: for each of NUM_PERM permutations ``h * a + b`` (mod 2^64,
    ``a`` odd), the high 32 bits of the minimum. Two sets agree on a row with probability their Jaccard similarity."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    minima = np.full(NUM_PERM, np.iinfo(np.uint64).max, dtype=np.uint64)
    block = np.empty((min(len(hashes), _CHUNK), NUM_PERM), dtype=np.uint64)
    for start in range(0, len(hashes), _CHUNK):
        part = hashes[start:start + _CHUNK]
        scratch = block[:len(part)]
        np.multiply(part[:, None], _MULTIPLIERS[None, :], out=scratch)
        scratch += _OFFSETS
        np.minimum(minima, scratch.min(axis=0), out=minima)
    return (minima >> np.uint64(32)).astype(np.uint32)


def contained(user_hashes: np.ndarray, lake_sorted: np.ndarray) -> np.ndarray:
    """For each user hash, whether it is in the lake key's sorted hash set."""
    if not len(lake_sorted) or not len(user_hashes):
        return np.zeros(len(user_hashes), dtype=bool)
    positions = np.minimum(np.searchsorted(lake_sorted, user_hashes), len(lake_sorted) - 1)
    return lake_sorted[positions] == user_hashes


# ---- LSH Ensemble ----------------------------------------------------------------------------------

_XQS = np.exp(np.linspace(-5, 5, 10))  # ratios of a partition's largest set to the query's size (datasketch's grid)


@lru_cache(maxsize=4)
def band_parameters(threshold: float = CONTAINMENT_THRESHOLD) -> np.ndarray:
    """(bands, rows per band) minimising false positives + false negatives, one row per ratio in ``_XQS``."""
    from datasketch.lshensemble import _optimal_param

    return np.array([_optimal_param(threshold, NUM_PERM, MAX_BAND_ROWS, xq, 0.5, 0.5) for xq in _XQS], dtype=np.int64)


def size_partitions(sizes: np.ndarray, num_part: int = NUM_PART) -> np.ndarray:
    """Upper set-size bounds of the ensemble's partitions (ascending), chosen as datasketch does to minimise
    the expected false positives, over sizes rounded up to a 5 % geometric grid (the optimisation is
    quadratic in the number of distinct sizes; thousands of keys of nearly equal size need not be told apart)."""
    from datasketch.lshensemble_partition import optimal_partitions

    sizes = np.asarray(sizes, dtype=np.int64)
    grid = np.unique(np.ceil(1.05 ** np.ceil(np.log(np.maximum(sizes, 1)) / np.log(1.05)) - 1e-9).astype(np.int64))
    grid = np.unique(np.maximum(grid, 1))
    rounded = grid[np.minimum(np.searchsorted(grid, sizes), len(grid) - 1)]
    domain, counts = np.unique(rounded, return_counts=True)
    partitions = optimal_partitions(domain, counts, num_part)
    uppers = np.unique([int(upper) for _, upper in partitions])
    uppers[-1] = max(int(uppers[-1]), int(sizes.max()))
    return uppers


@dataclass
class ContainmentLSH:
    """An LSH Ensemble over keys whose rows are sorted by set size: ``signatures[i]`` and ``sizes[i]`` for key i,
    ``ends[p]`` the row after the last key of partition p, ``uppers[p]`` its largest set size."""

    signatures: np.ndarray  # (keys, NUM_PERM) uint32
    sizes: np.ndarray  # (keys,) int64, ascending
    ends: np.ndarray
    uppers: np.ndarray
    params: np.ndarray

    @classmethod
    def build(cls, signatures: np.ndarray, sizes: np.ndarray) -> ContainmentLSH:
        """Rows must already be in ascending order of size."""
        sizes = np.asarray(sizes, dtype=np.int64)
        if not len(sizes):
            return cls(np.zeros((0, NUM_PERM), dtype=np.uint32), sizes, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), band_parameters())
        uppers = size_partitions(sizes)
        ends = np.searchsorted(sizes, uppers, side="right")
        keep = np.diff(np.concatenate(([0], ends))) > 0
        return cls(np.asarray(signatures, dtype=np.uint32), sizes, ends[keep], uppers[keep], band_parameters())

    def query(self, query_signature: np.ndarray, query_size: int) -> np.ndarray:
        """Boolean per key: whether it probably contains at least the threshold share of the query's values."""
        found = np.zeros(len(self.sizes), dtype=bool)
        if not len(self.sizes) or query_size <= 0:
            return found
        start = 0
        for end, upper in zip(self.ends, self.uppers):
            index = min(int(np.searchsorted(_XQS, float(upper) / float(query_size), side="left")), len(self.params) - 1)
            bands, rows = (int(v) for v in self.params[index])
            width = bands * rows
            equal = np.asarray(self.signatures[start:end, :width]) == query_signature[:width]
            found[start:end] = equal.reshape(end - start, bands, rows).all(axis=2).any(axis=1)
            start = end
        return found
