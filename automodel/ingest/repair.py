"""Repairing rows whose number of cells differs from the table's, without adding or losing a value.

Each candidate repair is scored by how well the repaired row fits the kinds its columns usually hold
(numbers under numbers, dates under dates); the best candidate wins, the simplest on ties:
- a row written with another delimiter (a line of a comma file written with semicolons or spaces): re-split;
- one field too many: the extra field is an empty one (a doubled delimiter) that is dropped, or two neighbouring
  cells that were one value holding the delimiter, joined back with it;
- one field too few (a delimiter missing, two values run together): an empty cell goes where the row fits best;
- anything further off: the surplus cells are joined into the last column, or the row is padded at its end.
"""

from __future__ import annotations

from itertools import combinations

from automodel.ingest.regions import ColumnKinds

_MAX_SHIFT = 3


def _join_candidates(cells: list[str], width: int, kinds: ColumnKinds, delimiter: str, preference: int, how: str):
    """Rows made by joining neighbouring cells back with the delimiter (a value that held it) at the width."""
    extra = len(cells) - width
    gaps = range(len(cells) - 1)
    choices = list(combinations(gaps, extra)) if extra == 1 or len(gaps) <= 24 else [tuple(range(g, g + extra)) for g in range(len(cells) - extra)]
    for chosen in choices:
        joined, current = [], cells[0]
        for gap in range(len(cells) - 1):
            if gap in chosen:
                current += delimiter + cells[gap + 1]
            else:
                joined.append(current)
                current = cells[gap + 1]
        joined.append(current)
        yield kinds.fit(joined), preference, chosen[-1], joined, how


def repair_row(cells: list[str], width: int, kinds: ColumnKinds, delimiter: str,
               alternatives: list[tuple[str, list[str]]] = ()) -> tuple[list[str], str]:
    """The row at the table's width and what was done to it. ``alternatives`` are the row split with other
    delimiters: (delimiter, cells)."""
    # (fit, preference: lower wins a tie, position: later wins a tie, cells, action)
    candidates: list[tuple[float, int, int, list[str], str]] = []
    # A line written with another delimiter rarely holds the table's own: where it does, re-splitting loses ties.
    resplit_preference = 0 if len(cells) == 1 else 3
    for other, split in alternatives:
        if len(split) == width:
            candidates.append((kinds.fit(split), resplit_preference, 0, split, "written with a different delimiter: re-split on it"))
        elif width < len(split) <= width + _MAX_SHIFT:
            candidates.extend(_join_candidates(split, width, kinds, other, 4,
                                               "written with a different delimiter: re-split on it, values holding it joined"))
    extra = len(cells) - width
    if 0 < extra <= _MAX_SHIFT:
        empties = [i for i, c in enumerate(cells) if not c.strip()]
        if len(empties) >= extra:
            for drop in combinations(empties, extra) if len(empties) <= 12 else [tuple(empties[-extra:])]:
                kept = [c for i, c in enumerate(cells) if i not in drop]
                candidates.append((kinds.fit(kept), 1, drop[-1], kept, f"dropped {'an empty field' if extra == 1 else f'{extra} empty fields'}"))
        candidates.extend(_join_candidates(cells, width, kinds, delimiter, 2, "joined cells that held the delimiter"))
    elif extra > _MAX_SHIFT:
        joined = cells[: width - 1] + [delimiter.join(cells[width - 1:])]
        candidates.append((kinds.fit(joined), 3, 0, joined, f"joined the last {extra + 1} cells"))
    elif -_MAX_SHIFT <= extra < 0:
        missing = -extra
        for spots in combinations(range(width), missing) if width <= 40 or missing == 1 else [tuple(range(width - missing, width))]:
            filled, source = [], iter(cells)
            for i in range(width):
                filled.append("" if i in spots else next(source, ""))
            candidates.append((kinds.fit(filled), 1, spots[-1], filled,
                               f"inserted {'an empty cell' if missing == 1 else f'{missing} empty cells'}"))
    if not candidates:
        padded = cells + [""] * (width - len(cells))
        candidates.append((kinds.fit(padded), 3, 0, padded, f"padded with {width - len(cells)} empty cells"))
    best = max(candidates, key=lambda c: (round(c[0], 9), -c[1], c[2]))
    return best[3], best[4]
