"""Role inference accuracy on a hand-labelled set of real columns from public tables.

    .venv/bin/python bench/roles.py [--show-errors] [--json]

Each table of ``bench/role_labels.csv`` is loaded from its PyPI package (see role_tables.py),
written to CSV bytes exactly as a user's upload would be, and sent through the same path as a
run: ``load_bytes`` -> ``clean_frame`` -> ``profile_frame``. The inferred role of every labelled
column is compared with the label. Labels are a person's judgement of how each column should be
treated, on these rules: integers that count or measure (years included) are numeric; codes and
labels with a limited set of values are categorical, even when written as integers (months,
precincts); yes/no, true/false and 0/1 flags are boolean; unique or nearly unique keys and names of
entities are identifiers; calendar dates written as text are date or datetime; percent means the
header or the values say so (perc, pct, percent, %).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from role_tables import load_table

from automodel import stages


def read_labels(path: Path) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Labels by table and column, and each table's split (``dev``: the rules were tuned on it; ``holdout``:
    labelled before any inference was run on it and never used to tune)."""
    labels: dict[str, dict[str, str]] = defaultdict(dict)
    splits: dict[str, str] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            labels[row["table"]][row["column"]] = row["role"]
            splits[row["table"]] = row.get("split") or "dev"
    return labels, splits


def score(results: list[tuple]) -> dict:
    total = len(results)
    correct = sum(r[2] == r[3] for r in results)
    support = Counter(r[2] for r in results)
    predicted = Counter(r[3] for r in results)
    per_role = {}
    for role in sorted(support, key=lambda k: (-support[k], k)):
        hits = sum(1 for r in results if r[2] == role and r[3] == role)
        per_role[role] = {"support": support[role], "recall": round(hits / support[role], 3),
                          "precision": round(hits / predicted[role], 3) if predicted[role] else 0.0}
    high = [r for r in results if r[4] >= 0.8]
    return {
        "columns": total, "accuracy": round(correct / max(total, 1), 4), "per_role": per_role,
        "high_confidence_share": round(len(high) / max(total, 1), 3),
        "high_confidence_accuracy": round(sum(r[2] == r[3] for r in high) / max(len(high), 1), 4),
    }


def infer_table(table: str, columns: list[str]) -> dict[str, tuple[str, float]]:
    frame = load_table(table)[columns]
    data = frame.to_csv(index=False).encode("utf-8")
    raw, _ = stages.load_raw(f"{table.replace('/', '_').replace(':', '_')}.csv", data, table)
    cleaned, _ = stages.clean_frame(raw, None)
    profile = stages.profile_frame(cleaned, raw, None, None)
    return {m.name: (m.role, m.confidence) for m in profile.metas}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=str(HERE / "role_labels.csv"))
    parser.add_argument("--show-errors", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    labels, splits = read_labels(Path(args.labels))
    started = time.perf_counter()
    results = []  # (table, column, label, predicted, confidence, split)
    for table, wanted in labels.items():
        inferred = infer_table(table, list(wanted))
        for column, label in wanted.items():
            role, confidence = inferred.get(column, ("dropped", 0.0))
            results.append((table, column, label, role, confidence, splits[table]))
    seconds = time.perf_counter() - started
    summary = {"tables": len(labels), "seconds": round(seconds, 2), "all": score(results)}
    for split in ("dev", "holdout1", "holdout2"):
        summary[split] = score([r for r in results if r[5] == split])
        summary[split]["tables"] = sum(1 for t in labels if splits[t] == split)
    summary["errors"] = [{"table": t, "column": c, "label": lab, "predicted": p, "confidence": conf, "split": sp}
                         for t, c, lab, p, conf, sp in results if lab != p]
    if args.json:
        print(json.dumps(summary))
        return 0
    for split in ("holdout2", "holdout1", "dev", "all"):
        part = summary[split]
        print(f"{split:<8} {part['columns']:>4} columns: accuracy {part['accuracy']:.3f}; confidence >= 0.8 on "
              f"{part['high_confidence_share']:.0%} of them, accuracy there {part['high_confidence_accuracy']:.3f}")
    print(f"({len(labels)} public tables, {seconds:.1f} s)")
    for split in ("holdout2", "all"):
        print(f"\nper role ({split}): {'role':<12} {'support':>7} {'recall':>7} {'precision':>9}")
        for role, stats in summary[split]["per_role"].items():
            print(f"{'':<20}{role:<12} {stats['support']:>7} {stats['recall']:>7.3f} {stats['precision']:>9.3f}")
    if args.show_errors:
        for err in summary["errors"]:
            print(f"  [{err['split']}] {err['table']}.{err['column']}: label {err['label']}, inferred {err['predicted']} ({err['confidence']:.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
