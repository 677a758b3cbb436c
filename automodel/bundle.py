"""The saved model bundle (``models/<run_id>/best_model``): read by scoring runs, the lake a model remembers, the API."""

from __future__ import annotations

from pathlib import Path

import joblib

from automodel.errors import ScoringError


def load_model_bundle(path: Path) -> dict:
    if not Path(path).exists():
        raise ScoringError(f"No saved model at {path}; run `automodel run` first or give the run id of a run that trained a model.")
    return joblib.load(path)
