"""When a run fails: one sentence for the user, and nothing half-made left behind.

Used by the launcher for the runs it executes (automodel_assets.runs), by ``run_failure_recorder`` for the runs the
daemon launched, and by crash recovery for runs whose process died (automodel_assets.recovery).
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass

from automodel.safety import redact_pii
from automodel_assets.home import build_resources
from resources.settings import AutomodelSettings

_USER_ERRORS = {"AutomodelError", "InputFileError", "QuotaExceededError", "TargetError", "UnsafePathError", "ScoringError"}


@dataclass
class RunOutcome:
    success: bool
    error: str | None


def failure_message(result) -> str:
    """One sentence for the user: our own error's message if there is one, else the failing stage and its first line.

    ``result``: anything with ``all_events`` (a run's execution result, or a run's step-failure events)."""
    for event in result.all_events:
        if event.event_type_value != "STEP_FAILURE":
            continue
        error = event.event_specific_data.error
        step = event.step_key
        chain = []
        while error is not None:
            chain.append(error)
            error = error.cause
        for item in chain:
            if item.cls_name in _USER_ERRORS:
                return _first_line(item.message)
        for item in chain:
            if item.cls_name not in ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError"):
                return f"Stage {step} failed: {_first_line(item.message)}"
        return f"Stage {step} failed."
    for event in result.all_events:
        if event.event_type_value == "RUN_FAILURE" and event.message:
            return _first_line(event.message)
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed:
            return f"Check {event.event_specific_data.check_name} failed; see the run in the Dagster UI."
    return "The run failed; see the Dagster UI for details."


def _first_line(message: str) -> str:
    text = message.strip().splitlines()[0] if message and message.strip() else "unknown error"
    return redact_pii(re.sub(r"^[\w.]+(Error|Exception): ", "", text))  # stored, printed and notified: no personal data


def clear_run_outputs(settings: AutomodelSettings, run_id: str) -> None:
    """Remove every output a failed run wrote, so nothing half-made is left visible: the stored output of each asset
    on its partition (built in or added by an extension) and the files for people under the home."""
    build_resources(settings)["io_manager"].delete_partition(None, run_id)
    for path in settings.layout.run_output_paths(run_id):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists():
            path.unlink()
