"""Property-based tests: no generated input crashes the loader, cleaning, role inference or the CLI.

Each property runs FUZZ_EXAMPLES generated cases (RELIABILITY.md records the totals).
"""

from __future__ import annotations

import io
import string
from contextlib import redirect_stderr, redirect_stdout

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from automodel.errors import AutomodelError
from automodel.ingest.cleaning import clean
from automodel.ingest.loader import load_bytes
from automodel.ingest.role_words import ROLES
from automodel.ingest.roles import infer_column_meta

FUZZ_EXAMPLES = 150
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

cells = st.one_of(
    st.text(alphabet=string.printable, max_size=12),
    st.sampled_from(["", "NA", "n/a", "$1,200", "45%", "(300)", "1.2e3", "yes", "no", "2024-01-31", "01/02/2023", "Texas", "TX", "06037", "a@b.co"]),
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(str),
)


@st.composite
def csv_bytes(draw) -> bytes:
    columns = draw(st.integers(1, 6))
    rows = draw(st.integers(0, 25))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    header = [draw(st.text(alphabet=string.ascii_letters + " _", min_size=0, max_size=8)) for _ in range(columns)]
    lines = [delimiter.join(header)]
    for _ in range(rows):
        width = draw(st.integers(max(1, columns - 1), columns + 1))  # ragged rows too
        lines.append(delimiter.join(draw(cells).replace("\n", " ") for _ in range(width)))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    return "\n".join(lines).encode(encoding, errors="replace")


@FUZZ
@given(st.binary(max_size=2048))
def test_loader_survives_arbitrary_bytes(data):
    for name in ("input.csv", "input.json", "input.parquet", "input.xlsx", "input.csv.gz"):
        try:
            frame, info = load_bytes(name, data)
        except AutomodelError as exc:
            assert str(exc) and "\n" not in str(exc)
        else:
            assert isinstance(frame, pd.DataFrame) and len(frame) > 0 and info.rows == len(frame)


@FUZZ
@given(csv_bytes())
def test_loader_reads_generated_delimited_text_or_says_why(data):
    try:
        frame, info = load_bytes("generated.csv", data)
    except AutomodelError as exc:
        assert str(exc).endswith(".") and "\n" not in str(exc)
        return
    assert frame.shape == (info.rows, info.columns)
    assert len(set(frame.columns)) == frame.shape[1], "column names must be unique after loading"


@st.composite
def text_frames(draw) -> pd.DataFrame:
    columns = draw(st.integers(1, 5))
    rows = draw(st.integers(1, 30))
    data = {f"c{i}": [draw(cells) for _ in range(rows)] for i in range(columns)}
    return pd.DataFrame(data, dtype=object)


@FUZZ
@given(text_frames())
def test_cleaning_and_roles_never_lose_rows(frame):
    result = clean(frame)
    assert len(result.frame) == len(frame) and len(result.training_mask) == len(frame)
    metas = infer_column_meta(result.frame, frame)
    assert [m.name for m in metas] == list(result.frame.columns)
    assert all(m.role in ROLES and 0 <= m.confidence <= 1 for m in metas)


argv_items = st.one_of(
    st.sampled_from(["run", "score", "rerun", "sessions", "index", "inspect", "--json", "--target", "--user", "--label", "--limit",
                     "--from", "--model", "--export", "--lake", "../../etc/passwd", "a=b", "x=numeric", "-1", "0", "/nonexistent.csv"]),
    st.text(alphabet=string.printable, max_size=10),
)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(argv_items, max_size=5))
def test_cli_arguments_never_crash(home, argv):
    from automodel_assets.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:  # --help prints usage and exits 0
            code = exc.code
    assert isinstance(code, int)
    assert "Traceback" not in err.getvalue()
    if code != 0:
        assert err.getvalue().startswith("error: ") or "usage:" in out.getvalue()
        assert "unexpected" not in err.getvalue(), err.getvalue()
