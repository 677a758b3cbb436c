"""What the catalog keeps about one lake table: roles, types and statistics of its columns, its join keys
with the hashes and MinHash signature of their values, its tags, and the texts its embeddings are made from.

``profile_file`` is what the catalog's build runs for each changed table, in its own process or in a
worker process (``automodel.lake.profile_worker``); ``attach_embeddings`` embeds a batch of profiles together.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from automodel.embedder import embed
from automodel.errors import AutomodelError, InputFileError
from automodel.ingest.cleaning import clean
from automodel.ingest.roles import categorize_dataset, infer_column_meta
from automodel.lake.keys import lake_keys
from automodel.lake.search_index import KeyEntry, NewKey
from automodel.lake.sketches import signature, value_hashes
from automodel.lake.tables import declared_roles, read_lake_text
from automodel.lake.written import with_written_columns

PROFILE_ROWS = 2000  # roles and statistics from a sample; counts and keys from every row


def table_text(entry: dict, columns: list[str]) -> str:
    """What a table is about, for its embedding: name, description and column names."""
    return f"{entry['name'].replace('_', ' ')}: {entry.get('description', '')} Columns: {', '.join(c.replace('_', ' ') for c in columns)}."


def column_text(name: str, role: str, samples: list) -> str:
    return f"{name.replace('_', ' ')} ({role}): {', '.join(str(s) for s in samples[:3])}"


def _column_stats(series: pd.Series) -> dict:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series) and series.notna().any():
        values = series.astype(float)
        return {"min": float(values.min()), "max": float(values.max()), "mean": round(float(values.mean()), 6), "std": round(float(values.std() or 0.0), 6)}
    counts = series.astype(str).value_counts().head(3)
    return {"top": {str(k): int(v) for k, v in counts.items()}}


def profile_table(text: pd.DataFrame, entry: dict, embed_now: bool = True) -> dict:
    """Everything the catalog keeps about one table (written into it by ``automodel.lake.catalog``).

    Roles, types and statistics come from a typed sample of at most PROFILE_ROWS rows; counts and
    join keys from every row, read from the text so codes keep their leading zeros.
    """
    sample = text.sample(PROFILE_ROWS, random_state=0).sort_index() if len(text) > PROFILE_ROWS else text
    typed = clean(sample).frame
    metas = infer_column_meta(typed, sample, user_labels=declared_roles(entry))
    columns = []
    for meta in metas:
        present = text[meta.name][text[meta.name] != ""]
        meta.unique_count, meta.missing_count = int(present.nunique()), int(len(text) - len(present))
        columns.append([entry["name"], meta.name, meta.role, meta.dtype, meta.unique_count, meta.missing_count,
                        json.dumps(_column_stats(typed[meta.name])), json.dumps(meta.sample_values, default=str), None])
    keys, new_keys = [], []
    _, key_metas, _ = with_written_columns(typed, metas, sample)  # constant columns still form keys (a year beside month and day)
    for key in lake_keys(text, key_metas):
        distinct = key.values.dropna().unique()
        if not len(distinct):
            continue
        key_id = f"{entry['name']}::{'+'.join(key.columns)}::{key.kind}"
        hashes = value_hashes(distinct)
        keys.append((key_id, entry["name"], json.dumps(key.columns), key.kind, len(hashes), json.dumps([str(v) for v in distinct[:5]]), key.recipe))
        new_keys.append(NewKey(KeyEntry(key_id, entry["name"], list(key.columns), key.kind, len(hashes), key.recipe), hashes, signature(hashes)))
    tags = sorted(set(entry.get("tags", [])) | set(categorize_dataset(typed, metas)))
    texts = [table_text(entry, list(text.columns)), *(column_text(m.name, m.role, m.sample_values) for m in metas)]
    profile = {"rows": len(text), "columns": columns, "keys": keys, "new_keys": new_keys, "tags": tags, "texts": texts, "embedding": None}
    if embed_now:
        attach_embeddings([profile])
    return profile


def profile_file(lake_dir: Path, entry: dict) -> tuple[dict | None, str | None]:
    """A table's profile, or None and why it could not be read (in a worker process or this one)."""
    try:
        text = read_lake_text(lake_dir, entry)
        if text.empty or not len(text.columns):
            raise ValueError("it has no rows")
        return profile_table(text, entry, embed_now=False), None
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError, InputFileError, OSError) as exc:
        # One bad table must not keep the rest of the lake out of the index.
        why = exc.message if isinstance(exc, AutomodelError) else str(exc)
        return None, (why.splitlines() or [""])[0][:160]


def attach_embeddings(profiles: list[dict]) -> None:
    texts = [t for profile in profiles for t in profile["texts"]]
    # Regional extracts of one table repeat column texts: each distinct text is embedded once.
    distinct = list(dict.fromkeys(texts))
    by_text = dict(zip(distinct, embed(distinct, batch_size=128)))
    vectors = iter(by_text[t] for t in texts)
    for profile in profiles:
        profile["embedding"] = next(vectors).tolist()
        for column in profile["columns"]:
            column[-1] = next(vectors).tolist()
