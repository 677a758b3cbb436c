"""LLM providers and the number check, against a real OpenAI-compatible HTTP server on loopback."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler

import pytest
from conftest import LoopbackServer

from automodel.outputs.llm import LLMError, LLMUnavailableError, OpenAICompatibleProvider, make_provider, numbers_in_text, unsupported_numbers
from automodel.outputs.summary import ask_follow_up_question, summarize, summary_facts, template_summary


class OpenAICompatibleServer(LoopbackServer):
    """A chat-completions endpoint on 127.0.0.1: replies are queued per test; every request is recorded.

    A queued reply is a string (the message content), an int (an HTTP error status), ("sleep", seconds, text) or a
    callable that writes the content from the request body.
    When the queue is empty the last reply is repeated.
    """

    def __init__(self, model: str = "test-model"):
        self.model = model
        self.replies: list = []
        self.requests: list[dict] = []
        self._last = "ok"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, status: int, body: dict):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                try:
                    self.wfile.write(data)
                except BrokenPipeError:  # the client timed out first, as the timeout test intends
                    pass

            def do_GET(self):
                server.requests.append({"method": "GET", "path": self.path, "headers": dict(self.headers)})
                if self.path == "/v1/models":
                    self._send(200, {"object": "list", "data": [{"id": server.model, "object": "model"}]})
                else:
                    self._send(404, {"error": "not found"})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append({"method": "POST", "path": self.path, "headers": dict(self.headers), "body": body})
                reply = server.replies.pop(0) if server.replies else server._last
                server._last = reply
                if isinstance(reply, int):
                    self._send(reply, {"error": {"message": f"status {reply}"}})
                    return
                if callable(reply):  # a reply written from the request, like a model reading its prompt
                    reply = reply(body)
                if isinstance(reply, tuple) and reply[0] == "sleep":
                    import time

                    time.sleep(reply[1])
                    reply = reply[2]
                if self.path != "/v1/chat/completions":
                    self._send(404, {"error": "not found"})
                    return
                self._send(200, {"id": "cmpl-1", "object": "chat.completion", "model": body.get("model"),
                                 "choices": [{"index": 0, "message": {"role": "assistant", "content": reply}, "finish_reason": "stop"}]})

        super().__init__(Handler)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@pytest.fixture
def llm_server():
    with OpenAICompatibleServer() as server:
        yield server


def penguin_facts() -> dict:
    """Facts of a real classification run on Palmer penguins (numbers as the model stage reports them)."""
    result = {
        "analyzer": "ClassificationAnalyzer", "task": "classification", "target": "species",
        "metrics": {"accuracy": 0.9855072463768116, "f1": 0.9877327980372477, "roc_auc": 0.9997150997150998},
        "model_info": {"model": "logistic_regression", "features": 7, "training_rows": 344, "candidates": 3},
        "trusted": True, "notes": ["selected ClassificationAnalyzer"], "excluded_columns": {}, "details": {},
    }
    importance = [{"feature": "bill_length_mm", "importance": 0.26}, {"feature": "bill_depth_mm", "importance": 0.04}, {"feature": "island", "importance": 0.02}]
    return summary_facts(result, 344, 8, None, None, importance)


VALID = ("automodel analysed 344 rows and 8 columns. A logistic regression predicts species with accuracy 0.986 "
         "(98.6%), macro F1 0.988 and ROC-AUC 1.000; bill_length_mm matters most.")
INVENTED = "A logistic regression predicts species with accuracy 0.986 on 344 rows; it should reach 99.7% with 1,200 more rows."


def test_numbers_are_read_as_written():
    found = numbers_in_text("R² 0.871 on 1,234 rows (12.5%), F1 0.9, kmeans_k3 and 2 clusters")
    assert [(w, v, d, p) for w, v, d, p in found] == [("0.871", 0.871, 3, False), ("1,234", 1234.0, 0, False), ("12.5%", 12.5, 1, True),
                                                     ("0.9", 0.9, 1, False), ("2", 2.0, 0, False)]


def test_number_check_accepts_rounding_and_percentages_and_rejects_inventions():
    facts = penguin_facts()
    assert unsupported_numbers(VALID, facts) == []
    assert unsupported_numbers(INVENTED, facts) == ["99.7%", "1,200"]
    assert unsupported_numbers("accuracy 0.99", facts) == []  # 0.9855 rounded to 2 decimals
    assert unsupported_numbers("accuracy 0.97", facts) == ["0.97"]
    assert unsupported_numbers("In 2024 the model ...", facts) == ["2024"]


@pytest.mark.parametrize("task", ["regression", "classification", "clustering", "anomaly", "descriptive"])
def test_template_summary_passes_its_own_number_check(task):
    metrics = {"regression": {"r2": 0.871, "rmse": 312.5, "mae": 250.1, "mape": 0.061},
               "classification": {"accuracy": 0.93, "f1": 0.61, "roc_auc": 0.97},
               "clustering": {"silhouette": 0.41, "clusters": 3.0},
               "anomaly": {"anomalies": 18.0, "anomaly_rate": 0.0523},
               "descriptive": {"rows": 344.0, "columns": 8.0, "missing_cells_pct": 0.79}}[task]
    details = {"clustering": {"cluster_sizes": {0: 120, 1: 150, 2: 74}},
               "descriptive": {"top_correlations": [{"a": "flipper_length_mm", "b": "body_mass_g", "pearson": 0.8712, "spearman": 0.84}],
                               "recommendations": ["Column 'sex' is 3% empty: fill it at the source or leave it out."]}}.get(task, {})
    result = {"analyzer": f"{task.title()}Analyzer", "task": task, "target": "body_mass_g" if task in ("regression", "classification") else None,
              "metrics": metrics, "model_info": {"model": "lightgbm"}, "trusted": task != "regression", "notes": ["R² 0.871 is below MIN_R2 0.9"],
              "excluded_columns": {"id": "identifier"}, "details": details}
    facts = summary_facts(result, 344, 8, {"table": "us_counties", "coverage": 0.92, "kept": True}, None, [{"feature": "flipper_length_mm", "importance": 0.5}])
    text = template_summary(facts)
    assert unsupported_numbers(text, facts) == [], text
    assert "Recommendations:" in text


def test_llm_summary_that_invents_a_number_falls_back_to_the_template(llm_server):
    llm_server.replies = [INVENTED, "- Collect more Chinstrap examples.\n- Score new colonies with the saved model."]
    provider = make_provider("openai", base_url=llm_server.base_url, model="test-model")
    facts = penguin_facts()
    result = summarize(facts, provider)
    assert result.provider == "template" and result.requested_provider == "openai"
    assert result.text == template_summary(facts)
    assert "99.7%" in result.fallback_reason and "1,200" in result.fallback_reason
    assert result.recommendations == ["Collect more Chinstrap examples.", "Score new colonies with the saved model."]
    assert result.recommendations_source == "openai"
    prompt = llm_server.requests[0]["body"]["messages"][1]["content"]
    assert '"accuracy": 0.9855' in prompt and llm_server.requests[0]["body"]["model"] == "test-model"


def test_llm_summary_with_only_given_numbers_is_kept(llm_server):
    llm_server.replies = [VALID, "- Add more rows with 344 as a floor.\n- Invent 17 new features."]
    result = summarize(penguin_facts(), make_provider("openai", base_url=llm_server.base_url, model="test-model"))
    assert result.provider == "openai" and result.text == VALID
    # one follow-up line invents 17: the recommendations come from the template and the reason is recorded
    assert result.recommendations_source == "template" and "17" in result.fallback_reason
    assert any("automodel score" in r for r in result.recommendations)


def test_pii_in_an_llm_reply_is_redacted(llm_server):
    llm_server.replies = [VALID + " Contact ana.lopez@example.org or 555-123-4567.", "- Keep going."]
    result = summarize(penguin_facts(), make_provider("openai", base_url=llm_server.base_url, model="m"))
    assert result.provider == "openai", result.fallback_reason
    assert result.text == VALID + " Contact [email] or [phone]."


def test_client_retries_server_errors_then_succeeds(llm_server):
    llm_server.replies = [503, 502, "fine"]
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url, model="m", retries=2, timeout_s=5)
    assert provider.complete("s", "u") == "fine"
    assert provider.requests_made == 3


def test_client_gives_up_after_retries_and_summary_records_why(llm_server):
    llm_server.replies = [500, 500, 500, 500, 500, 500]
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url, model="m", retries=1, timeout_s=5)
    with pytest.raises(LLMError, match=r"did not answer after 2 attempt\(s\) \(HTTP 500\)"):
        provider.complete("s", "u")
    before = provider.requests_made
    result = summarize(penguin_facts(), provider)
    assert result.provider == "template" and "HTTP 500" in result.fallback_reason
    assert provider.requests_made - before == 2, "a failing endpoint is not asked again for recommendations"
    assert result.recommendations == [r for r in summarize(penguin_facts(), None).recommendations]


def test_client_does_not_retry_a_refused_key_and_sends_it_as_bearer(llm_server):
    llm_server.replies = [401]
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url, model="m", api_key="sk-test-123", retries=3)
    with pytest.raises(LLMError, match="AUTOMODEL_LLM_API_KEY"):
        provider.complete("s", "u")
    assert provider.requests_made == 1
    assert llm_server.requests[0]["headers"]["Authorization"] == "Bearer sk-test-123"


def test_client_times_out(llm_server):
    llm_server.replies = [("sleep", 2.0, "late")]
    provider = OpenAICompatibleProvider(base_url=llm_server.base_url, model="m", retries=0, timeout_s=0.3)
    with pytest.raises(LLMError, match="timed out"):
        provider.complete("s", "u")


def test_model_defaults_to_the_one_the_server_lists(llm_server):
    llm_server.replies = ["hello"]
    provider = make_provider("openai", base_url=llm_server.base_url)
    assert provider.complete("s", "u") == "hello"
    assert provider.model == "test-model"
    assert [r["path"] for r in llm_server.requests] == ["/v1/models", "/v1/chat/completions"]


def test_follow_up_question_uses_template_without_llm():
    recs, source, reason = ask_follow_up_question(penguin_facts(), None)
    assert source == "template" and reason is None and recs


def test_configuration_errors_are_one_clear_sentence():
    assert make_provider("template") is None
    with pytest.raises(LLMError, match="AUTOMODEL_LLM_BASE_URL"):
        make_provider("openai", base_url="")
    with pytest.raises(LLMError, match="Unknown LLM provider 'gpt'"):
        make_provider("gpt")
    with pytest.raises(LLMUnavailableError, match=r"pip install '\.\[vllm\]'.*AUTOMODEL_LLM_PROVIDER=openai"):
        make_provider("vllm", model="Qwen/Qwen2.5-0.5B-Instruct")


def test_unreachable_endpoint_is_reported_not_raised():
    provider = OpenAICompatibleProvider(base_url="http://127.0.0.1:9/v1", model="m", retries=0, timeout_s=1)
    result = summarize(penguin_facts(), provider)
    assert result.provider == "template" and "did not answer" in result.fallback_reason


from hypothesis import given, settings
from hypothesis import strategies as st


@settings(max_examples=200, deadline=None)
@given(value=st.floats(min_value=0.0005, max_value=1e6, allow_nan=False), decimals=st.integers(0, 4), shift=st.floats(0.02, 0.5))
def test_number_check_property_rounded_facts_pass_and_shifted_ones_fail(value, decimals, shift):
    facts = {"metrics": {"score": value}}
    written = f"{value:,.{decimals}f}"
    if float(written.replace(",", "")) == 0:
        return
    assert unsupported_numbers(f"the score is {written}", facts) == []
    wrong = value * (1 + shift) + 1  # well outside the rounding tolerance of any precision
    text = f"the score is {wrong:,.{decimals}f}"
    if abs(float(f"{wrong:.{decimals}f}") - value * 100) > 0.5 * 10 ** -decimals + 1e-9:  # not the same rate written as a percentage
        assert unsupported_numbers(text, facts) == [f"{wrong:,.{decimals}f}"]
