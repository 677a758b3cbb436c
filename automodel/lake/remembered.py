"""The lake a model was trained with, remembered: where it was, and which version of each joined table it read.

Training records, in the enrichment spec saved with the model (``spec["lake"]``) and in the run's merge
report, the lake's location as the user gave it (a folder, or an ``s3://`` prefix) and, for every table the
model joined, a fingerprint of its file (path in the lake, size, modification time and SHA-256 of the
content) with the lift the table brought. ``score``, ``rerun``, drop-folder scoring and the HTTP API read it
back (``trained_lake``) and join the same tables from the same place unless told otherwise (``--lake``).

When scoring, each joined table is compared with its fingerprint (``check_joined_tables``): a table whose
content changed is joined as it is now and said in one sentence (a lake that grows new rows is what scoring
new periods needs); a table that is gone, or lost the key or the columns the model uses, is refused in one
sentence, unless the user allows scoring without it (``--allow-missing-lake``, AUTOMODEL_ALLOW_MISSING_LAKE),
in which case its columns are left empty and the loss is stated (the lift it brought at training).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from automodel.bundle import load_model_bundle
from automodel.errors import ScoringError
from automodel.lake.source import LakeError, lake_entries

_HASH_CHUNK = 1 << 20


def file_fingerprint(path: Path) -> dict:
    """Size, modification time and SHA-256 of a file's content (read in chunks: memory stays flat)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    stat = Path(path).stat()
    return {"size": stat.st_size, "mtime": round(stat.st_mtime, 3), "sha256": digest.hexdigest()}


def lake_record(location: str | Path, lake_dir: Path, tables: list[dict], metric: str | None = None) -> dict:
    """What a training run remembers of its lake: the location as configured and each joined table's fingerprint.

    ``tables``: the merge report's kept tables (``table``, ``lift``, ``added_columns``)."""
    lake_dir = Path(lake_dir)
    try:
        entries = {e["name"]: e for e in lake_entries(lake_dir)}
    except LakeError:  # the lake went away during the run: nothing to fingerprint, and scoring will say so
        entries = {}
    record = {"location": str(location), "metric": metric, "tables": {}}
    for table in tables:
        entry = entries.get(table["table"])
        if entry is None:
            continue
        record["tables"][table["table"]] = {"file": entry["file"], **file_fingerprint(lake_dir / entry["file"]),
                                            "lift": table.get("lift"), "columns": len(table.get("added_columns") or [])}
    return record


def trained_lake(model_path: str | Path) -> dict | None:
    """The lake a saved model was trained with (``location``, ``metric`` and per joined table ``file``, ``size``,
    ``mtime``, ``sha256``, ``lift``), or None when it joined no lake table. A plain read of the model bundle:
    the command line, the sensors and the HTTP API all call this."""
    spec = load_model_bundle(Path(model_path)).get("enrichment_spec") or {}
    return spec.get("lake")


def spec_lake(spec: dict | None) -> dict | None:
    """The lake record inside an enrichment spec (None for specs saved before lakes were remembered)."""
    return (spec or {}).get("lake")


def choose_lake(explicit: str | None, model: str | None, configured: str) -> dict:
    """Which lake a run reads, and why: the one asked for (``score --lake``), the one the model was trained with
    (a scoring run), else the configured one (AUTOMODEL_LAKE; a training run's lake must be the indexed one)."""
    for location, why in ((explicit, "given for this run"), (model, "the lake the model was trained with")):
        if location:
            return {"location": str(location), "why": why}
    return {"location": str(configured), "why": "the configured lake (AUTOMODEL_LAKE)"}


def lake_for_run(options: dict | None, reuse_spec: dict | None, configured: str, home: str | Path) -> tuple[Path, dict]:
    """The local folder a run's enrichment reads and the record of where it came from (see ``choose_lake``);
    an ``s3://`` location is mirrored under the home like the configured lake."""
    from automodel.lake.source import resolve_lake

    explicit = (options or {}).get("lake") if reuse_spec else None
    lake = choose_lake(explicit, (spec_lake(reuse_spec) or {}).get("location"), configured)
    return resolve_lake(lake["location"], home), lake


def lake_of_run(row: dict | None) -> str | None:
    """The lake a recorded run read (its merge report's ``lake.location``): what ``rerun`` reads again by default."""
    return (((row or {}).get("enrichment") or {}).get("lake") or {}).get("location")


def allow_missing_lake(options: dict | None, setting: bool) -> bool:
    return bool((options or {}).get("allow_missing_lake")) or bool(setting)


@dataclass
class LakeCheck:
    """What comparing a lake with the model's record found: tables to join, and the sentences to say."""

    join: list[str] = field(default_factory=list)  # tables to join (present, possibly changed)
    changed: list[str] = field(default_factory=list)  # one sentence per changed table
    missing: dict[str, str] = field(default_factory=dict)  # table -> why it cannot be joined

    def to_dict(self) -> dict:
        return {"changed": list(self.changed), "missing": dict(self.missing)}


def _size(n: int) -> str:
    return f"{n / 1024**2:,.1f} MB" if n >= 1024**2 else f"{n / 1024:,.1f} KB" if n >= 1024 else f"{n} bytes"


def check_joined_tables(spec: dict, lake_dir: Path, location: str) -> LakeCheck:
    """Compare the lake at ``lake_dir`` with the fingerprints the model recorded for the tables it joined."""
    record = spec_lake(spec) or {}
    recorded = record.get("tables") or {}
    names = [one["table"] for one in spec.get("tables", [spec])]
    check = LakeCheck()
    try:
        entries = {e["name"]: e for e in lake_entries(Path(lake_dir))}
    except LakeError:
        entries = {}
        if not Path(lake_dir).is_dir():
            for name in names:
                check.missing[name] = f"the lake {location} is not there"
            return check
    for name in names:
        entry = entries.get(name)
        if entry is None or not (Path(lake_dir) / entry["file"]).is_file():
            check.missing[name] = f"it is no longer in the lake {location}"
            continue
        check.join.append(name)
        then = recorded.get(name)
        if not then:
            continue  # a model trained before lakes were remembered: nothing to compare with
        now = file_fingerprint(Path(lake_dir) / entry["file"])
        if now["sha256"] != then["sha256"]:
            moved = "" if entry["file"] == then.get("file") else f" (now {entry['file']}, was {then.get('file')})"
            check.changed.append(f"Lake table {name!r} changed since the model was trained ({_size(then['size'])} -> {_size(now['size'])}"
                                 f"{moved}); it was joined as it is now.")
    return check


def lost_sentence(name: str, why: str, spec: dict) -> str:
    """The loss of scoring without a joined table: the lift it brought at training."""
    record = spec_lake(spec) or {}
    then = (record.get("tables") or {}).get(name) or {}
    metric = record.get("metric") or "score"
    lift = then.get("lift")
    brought = f"{metric} {lift:+.3f} on the training run's 3-fold check" if isinstance(lift, (int, float)) else "an unrecorded lift"
    return (f"Scored without lake table {name!r} ({why}): the model loses what that table brought at training ({brought}), "
            f"and its columns were left empty.")


def refusal_sentence(missing: dict[str, str], spec: dict) -> str:
    name, why = next(iter(missing.items()))
    record = spec_lake(spec) or {}
    lift = ((record.get("tables") or {}).get(name) or {}).get("lift")
    brought = f" (it brought {record.get('metric') or 'score'} {lift:+.3f} at training)" if isinstance(lift, (int, float)) else ""
    more = f" (and {len(missing) - 1} more table{'s' if len(missing) > 2 else ''})" if len(missing) > 1 else ""
    return (f"The model joined lake table {name!r}{brought}, but {why}{more}; restore it, point --lake at a lake that has it, "
            f"or allow scoring without it (--allow-missing-lake or AUTOMODEL_ALLOW_MISSING_LAKE=1).")


def require_tables(check: LakeCheck, spec: dict, allow_missing: bool) -> list[str]:
    """Refuse (ScoringError, one sentence) when a joined table cannot be joined and the user did not allow that;
    otherwise the sentences stating what scoring loses without each one."""
    if check.missing and not allow_missing:
        raise ScoringError(refusal_sentence(check.missing, spec))
    return [lost_sentence(name, why, spec) for name, why in check.missing.items()]


def join_remembered(frame, lake_dir: Path, spec: dict, location: str, allow_missing: bool, written=None):
    """Apply a saved enrichment to new rows from the lake at ``lake_dir``, checked against the model's record.

    Returns the enriched frame, each joined table's coverage (None for a table scored without), and the
    check with the sentences to say. A table that is gone, or lost its key or a column the model uses, is
    refused in one sentence unless ``allow_missing``; then its columns are left empty (the model imputes them)."""
    import numpy as np

    from automodel.lake.enrich import EnrichmentSpec, apply_join
    from automodel.lake.written import KEY_ONLY_ATTR, restore_for_keys

    check = check_joined_tables(spec, lake_dir, location)
    keyed = restore_for_keys(frame, written)
    restored = list(keyed.attrs[KEY_ONLY_ATTR])
    coverages: dict[str, float | None] = {}
    for one in spec.get("tables", [spec]):
        name = one["table"]
        if name in check.missing:
            continue
        saved = EnrichmentSpec(**one)
        try:
            joined, coverage = apply_join(keyed, lake_dir, saved)
        except KeyError as exc:  # a key column the lake table no longer has
            check.missing[name] = f"it no longer has its key column {exc.args[0]!r}"
            continue
        lost = [c for c in saved.added_columns if c not in joined.columns]
        if lost:
            shown = ", ".join(repr(c.split("__", 1)[-1]) for c in lost[:3])
            check.missing[name] = f"it no longer has column{'s' if len(lost) > 1 else ''} {shown}" + (f" and {len(lost) - 3} more" if len(lost) > 3 else "")
            continue
        keyed, coverages[name] = joined, coverage
    notes = require_tables(check, spec, allow_missing)
    for one in spec.get("tables", [spec]):
        if one["table"] in check.missing:
            coverages[one["table"]] = None
            for column in one.get("added_columns") or []:
                if column not in keyed.columns:
                    keyed[column] = np.nan
    return keyed.drop(columns=restored), coverages, check, notes


def rerun_lake(store, row: dict, options: dict) -> str | None:
    """What ``rerun`` reads. A scoring run keeps its options (``lake``, ``allow_missing_lake``; updated from ``options``)
    and so its model's lake; a training run reads the lake it read before (returned, to become the configured
    lake, whose index its search uses) unless ``options`` names another. Raises one sentence when that lake is gone."""
    from automodel.errors import AutomodelError
    from automodel.lake.source import is_s3

    if row.get("model_run_id"):
        if options:
            store.update(row["run_id"], options={**(row.get("options") or {}), **options})
        return None
    location = options.get("lake") or lake_of_run(row)
    if location and not is_s3(location) and not Path(location).is_dir():
        raise AutomodelError(f"Run {row['run_id']} read the lake {location}, which is not a folder any more; "
                             "pass --lake DIR to rerun it on another lake.")
    return location
