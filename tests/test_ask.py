"""`automodel ask`: realistic questions on Palmer penguins, each checked against pandas computed here."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from test_llm import OpenAICompatibleServer

from automodel.outputs.ask import answer
from automodel.outputs.ask_charts import select_visualization
from automodel.outputs.ask_intent import QuestionError, column_aliases, parse_intent
from automodel.outputs.llm import make_provider


@pytest.fixture(scope="module")
def data():
    import palmerpenguins

    return palmerpenguins.load_penguins()


def _mean_by(d, column, by):
    return {str(k): round(float(v), 4) for k, v in d.groupby(by)[column].mean().items()}


# (question, expected action, expected chart, expected value computed from the data)
QUESTIONS = [
    ("How many penguins are there?", "describe", "bar", lambda d: len(d)),
    ("What is the average body mass by species?", "describe", "bar", lambda d: _mean_by(d, "body_mass_g", "species")),
    ("Which species has the highest average flipper length?", "describe", "bar",
     lambda d: d.groupby("species")["flipper_length_mm"].mean().idxmax()),
    ("How many Adelie penguins live on Dream?", "describe", "bar", lambda d: int(((d.species == "Adelie") & (d.island == "Dream")).sum())),
    ("What is the median body mass of Gentoo penguins?", "describe", "bar", lambda d: float(d.loc[d.species == "Gentoo", "body_mass_g"].median())),
    ("How many penguins weigh more than 5000 g?", "describe", "bar", lambda d: int((d.body_mass_g > 5000).sum())),
    ("How many missing values are in sex?", "describe", "bar", lambda d: {"sex": int(d.sex.isna().sum())}),
    ("What is the correlation between flipper length and body mass?", "describe", "scatter",
     lambda d: round(float(d.flipper_length_mm.corr(d.body_mass_g)), 4)),
    ("How many penguins per island?", "describe", "bar", lambda d: {k: int(v) for k, v in d.island.value_counts().items()}),
    ("Which island has the most penguins?", "describe", "bar", lambda d: d.island.value_counts().idxmax()),
    ("How many different species are there?", "describe", "bar", lambda d: int(d.species.nunique())),
    ("What is the maximum bill depth of female penguins?", "describe", "bar", lambda d: float(d.loc[d.sex == "female", "bill_depth_mm"].max())),
    ("Average flipper length in 2008", "describe", "bar", lambda d: round(float(d.loc[d.year == 2008, "flipper_length_mm"].mean()), 4)),
    ("Which sex has the lowest average bill depth?", "describe", "bar", lambda d: d.groupby("sex")["bill_depth_mm"].mean().idxmin()),
    ("What is the total body mass of male Gentoo penguins on Biscoe?", "describe", "bar",
     lambda d: float(d.loc[(d.sex == "male") & (d.species == "Gentoo") & (d.island == "Biscoe"), "body_mass_g"].sum())),
    ("Compare body mass of Adelie and Chinstrap", "describe", "bar",
     lambda d: _mean_by(d[d.species.isin(["Adelie", "Chinstrap"])], "body_mass_g", "species")),
    ("Show the distribution of bill length", "visualize", "histogram",
     lambda d: {k: round(float(v), 4) for k, v in d.bill_length_mm.describe().items()}),
    ("Plot bill length vs bill depth by species", "visualize", "scatter", lambda d: round(float(d.bill_length_mm.corr(d.bill_depth_mm)), 4)),
    ("Show a box plot of body mass by sex", "visualize", "box", lambda d: _mean_by(d, "body_mass_g", "sex")),
    ("Show body mass over time", "visualize", "line", lambda d: _mean_by(d, "body_mass_g", "year")),
    ("Pie chart of species", "visualize", "pie", lambda d: {k: int(v) for k, v in d.species.value_counts().items()}),
    ("Top 5 heaviest penguins", "describe", "bar", lambda d: d.body_mass_g.nlargest(5).tolist()),
    ("What are the 3 longest flippers on Dream?", "describe", "bar", lambda d: d.loc[d.island == "Dream", "flipper_length_mm"].nlargest(3).tolist()),
    ("Bottom 4 by bill depth", "describe", "bar", lambda d: d.bill_depth_mm.nsmallest(4).tolist()),
    ("Heatmap of species by island", "visualize", "heatmap",
     lambda d: {k: {c: int(n) for c, n in row.items()} for k, row in pd.crosstab(d.island, d.species).to_dict(orient="index").items()}),
]


@pytest.mark.parametrize("question,action,chart,expected", QUESTIONS, ids=[q[0] for q in QUESTIONS])
def test_questions_on_penguins_are_answered_correctly(data, question, action, chart, expected):
    result = answer(question, data, target="species", task="classification")
    assert result.intent.action == action
    assert result.chart == chart
    value = expected(data)
    if isinstance(value, float):
        assert result.value == pytest.approx(value, abs=1e-4)
    else:
        assert result.value == value
    assert result.figure is not None and result.text


def test_the_chart_holds_the_answer(data, tmp_path):
    from automodel.outputs.ask import write_answer_chart
    from automodel.outputs.report_page import figures_in_html

    result = answer("What is the average body mass by species?", data)
    path = write_answer_chart(result, tmp_path / "answer.html")
    bars = figures_in_html(path.read_text())["answer"]["data"][0]
    assert dict(zip(bars["x"], bars["y"])) == pytest.approx(data.groupby("species")["body_mass_g"].mean().to_dict())
    histogram = answer("Show the distribution of bill length", data).figure.to_dict()["data"][0]
    assert sum(histogram["y"]) == int(data.bill_length_mm.notna().sum())


def test_explain_uses_the_runs_feature_importance(data):
    importance = [{"feature": "bill_length_mm", "importance": 0.26, "method": "shap_tree"},
                  {"feature": "flipper_length_mm", "importance": 0.11, "method": "shap_tree"},
                  {"feature": "island", "importance": 0.05, "method": "shap_tree"}]
    result = answer("What drives the species?", data, target="species", importance=importance)
    assert result.intent.action == "explain" and result.value == ["bill_length_mm", "flipper_length_mm", "island"]
    assert "bill_length_mm" in result.text


def test_predictions_for_a_new_penguin_and_for_the_runs_rows(data):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from analyzers.base import FittedModel

    numeric, categorical = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"], ["island"]
    prep = ColumnTransformer([("n", make_pipeline(SimpleImputer(), StandardScaler()), numeric), ("c", OneHotEncoder(handle_unknown="ignore"), categorical)])
    pipeline = make_pipeline(prep, LogisticRegression(max_iter=1000)).fit(data[numeric + categorical], data["species"])
    fitted = FittedModel(pipeline, "classification", "species", numeric + categorical, classes=list(pipeline.classes_))
    predictions = fitted.predict_frame(data)

    result = answer("What species would a penguin on Biscoe with bill length 50 and flipper length 225 be?", data, target="species",
                    task="classification", predictions=predictions, fitted=fitted)
    assert result.intent.action == "predict"
    assert result.intent.assignments == {"bill_length_mm": 50, "flipper_length_mm": 225, "island": "Biscoe"}
    row = pd.DataFrame([{"bill_length_mm": 50, "bill_depth_mm": data.bill_depth_mm.median(), "flipper_length_mm": 225,
                         "body_mass_g": data.body_mass_g.median(), "island": "Biscoe"}])
    assert result.value == pipeline.predict(row)[0]

    counted = answer("How many Gentoo are predicted?", data, target="species", task="classification", predictions=predictions, fitted=fitted)
    assert counted.value == int((predictions["prediction"] == "Gentoo").sum())
    on_dream = answer("Show predictions for Dream island", data, target="species", task="classification", predictions=predictions, fitted=fitted)
    assert on_dream.value == predictions.loc[data.island == "Dream", "prediction"].value_counts().to_dict()


def test_regression_prediction_for_a_new_example(data):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    from analyzers.base import FittedModel

    features = ["flipper_length_mm", "bill_length_mm"]
    known = data.dropna(subset=["body_mass_g"])
    pipeline = make_pipeline(SimpleImputer(), LinearRegression()).fit(known[features], known["body_mass_g"])
    fitted = FittedModel(pipeline, "regression", "body_mass_g", features)
    result = answer("Predict the body mass of a penguin with flipper length 200 and bill length 45", data, target="body_mass_g",
                    task="regression", fitted=fitted)
    expected = float(pipeline.predict(pd.DataFrame([{"flipper_length_mm": 200, "bill_length_mm": 45}]))[0])
    assert result.intent.assignments == {"flipper_length_mm": 200, "bill_length_mm": 45}
    assert result.value == pytest.approx(expected, abs=1e-3)


def test_column_aliases_read_plain_english():
    assert {"body mass", "body mass g", "weight"} <= set(column_aliases("body_mass_g"))
    assert "flipper length" in column_aliases("flipper_length_mm")
    assert "unit price" in column_aliases("UnitPrice")


def test_selector_prefers_the_requested_chart_when_it_fits(data):
    assert select_visualization(parse_intent("histogram of body mass", data), data) == "histogram"
    assert select_visualization(parse_intent("scatter of species", data), data) == "bar"  # a scatter needs two numbers
    assert select_visualization(parse_intent("bill length against body mass", data), data) == "scatter"


def test_unrecognised_question_falls_back_to_the_llm_then_to_a_clear_error(data):
    with OpenAICompatibleServer() as llm:
        llm.replies = [json.dumps({"action": "describe", "columns": ["body_mass_g"], "aggregation": "max", "group_by": "species", "filters": [],
                                   "chart": "bar"})]
        provider = make_provider("openai", base_url=llm.base_url, model="m")
        result = answer("Who is the chonkiest of them all?", data, provider=provider)
        assert result.intent.source == "llm" and result.intent.group_by == "species"
        assert result.value == {k: float(v) for k, v in data.groupby("species")["body_mass_g"].max().items()}
        assert "chonkiest" in llm.requests[-1]["body"]["messages"][1]["content"]

        llm.replies = [json.dumps({"action": "describe", "columns": ["wingspan"], "filters": []})]  # no such column: nothing usable
        with pytest.raises(QuestionError, match="name a column"):
            answer("Who is the chonkiest of them all?", data, provider=provider)
        heuristics_first = len(llm.requests)
        answer("How many penguins are there?", data, provider=provider)
        assert len(llm.requests) == heuristics_first, "a question the heuristics understand must not reach the LLM"
    with pytest.raises(QuestionError, match="name a column"):
        answer("hello there", data)
    with pytest.raises(QuestionError, match="empty"):
        answer("   ", data)


def test_filters_that_match_nothing_say_so(data):
    result = answer("average body mass of penguins heavier than 9000", data)
    assert [f.describe() for f in result.intent.filters] == ["body_mass_g > 9000"]
    assert result.value == 0 and result.text.startswith("No rows match")
    lighter = answer("How many penguins are lighter than 3000 g?", data)
    assert lighter.value == int((data.body_mass_g < 3000).sum())
