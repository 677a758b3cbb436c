"""Language-model providers for summaries and questions, and the check every LLM text must pass.

Three providers: ``template`` (no model at all: the deterministic default), ``openai`` (any
OpenAI-compatible chat-completions endpoint, which is what ``vllm serve`` exposes) and ``vllm``
(in-process, an optional extra that needs a CUDA GPU; imported only when chosen).

An LLM may invent numbers. ``unsupported_numbers`` lists every number in a text that cannot be
traced to the facts it was given, so callers keep the text only when that list is empty.
"""

from __future__ import annotations

import json
import math
import re
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from automodel.errors import AutomodelError

PROVIDERS = ("template", "openai", "vllm")


class LLMError(AutomodelError):
    """The language model could not be configured or did not answer usefully."""


class LLMUnavailableError(LLMError):
    """The chosen provider cannot run here (its package or endpoint is missing)."""


class ChatProvider(Protocol):
    name: str

    def complete(self, system: str, user: str) -> str:
        ...


# ---- OpenAI-compatible HTTP (OpenAI, vllm serve, llama.cpp server, ...) ----------------------------

_RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


@dataclass
class OpenAICompatibleProvider:
    """Chat completions over HTTP: ``POST {base_url}/chat/completions``.

    ``base_url`` includes the API version, e.g. ``http://127.0.0.1:8000/v1`` for ``vllm serve``.
    When ``model`` is empty the first model the server lists (``GET {base_url}/models``) is used,
    which is the one model a ``vllm serve`` process serves.
    """

    base_url: str
    model: str = ""
    api_key: str = ""
    timeout_s: float = 30.0
    retries: int = 2
    max_tokens: int = 400
    temperature: float = 0.0
    name: str = "openai"

    def __post_init__(self):
        if not self.base_url or not re.match(r"^https?://", self.base_url):
            raise LLMError(
                f"The openai provider needs AUTOMODEL_LLM_BASE_URL set to an http(s) URL such as http://127.0.0.1:8000/v1 (got {self.base_url!r})."
            )
        self.base_url = self.base_url.rstrip("/")
        self.requests_made = 0

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _request(self, method: str, path: str, payload: dict | None = None) -> dict:
        url = f"{self.base_url}{path}"
        body = json.dumps(payload).encode() if payload is not None else None
        last = "no attempt made"
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(min(0.25 * (2 ** (attempt - 1)), 4.0))
            self.requests_made += 1
            try:
                request = urllib.request.Request(url, data=body, headers=self._headers(), method=method)
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
                try:
                    return json.loads(raw)
                except ValueError as exc:
                    raise LLMError(f"The LLM endpoint {url} answered with something that is not JSON; check AUTOMODEL_LLM_BASE_URL.") from exc
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code not in _RETRYABLE_STATUS:
                    hint = "check AUTOMODEL_LLM_API_KEY" if exc.code in (401, 403) else "check AUTOMODEL_LLM_BASE_URL and AUTOMODEL_LLM_MODEL"
                    raise LLMError(f"The LLM endpoint {url} refused the request ({last}); {hint}.") from exc
            except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                last = "timed out" if isinstance(reason, (socket.timeout, TimeoutError)) else f"{type(reason).__name__}: {reason}"
        raise LLMError(f"The LLM endpoint {url} did not answer after {self.retries + 1} attempt(s) ({last}).")

    def served_model(self) -> str:
        listing = self._request("GET", "/models")
        models = [m.get("id") for m in listing.get("data", []) if isinstance(m, dict) and m.get("id")]
        if not models:
            raise LLMError(f"The LLM endpoint {self.base_url} lists no models; set AUTOMODEL_LLM_MODEL.")
        return models[0]

    def complete(self, system: str, user: str) -> str:
        if not self.model:
            self.model = self.served_model()
        reply = self._request("POST", "/chat/completions", {
            "model": self.model, "temperature": self.temperature, "max_tokens": self.max_tokens,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        })
        try:
            content = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMError(f"The LLM endpoint {self.base_url} replied without choices[0].message.content.") from exc
        if not isinstance(content, str) or not content.strip():
            raise LLMError(f"The LLM endpoint {self.base_url} replied with an empty message.")
        return content.strip()


# ---- in-process vLLM (optional extra, GPU) ---------------------------------------------------------

_VLLM_ENGINES: dict[str, Any] = {}


@dataclass
class VLLMProvider:
    """vLLM inside this process. Loading the model takes a GPU and tens of seconds, so engines are cached per model."""

    model: str
    max_tokens: int = 400
    temperature: float = 0.0
    gpu_memory_utilization: float = 0.5
    name: str = "vllm"

    def __post_init__(self):
        try:
            import vllm  # noqa: F401  (optional extra)
        except ImportError as exc:
            raise LLMUnavailableError(
                "The vllm provider needs the optional vllm package and a CUDA GPU (pip install '.[vllm]'); install it, "
                "or run `vllm serve MODEL` elsewhere and set AUTOMODEL_LLM_PROVIDER=openai with AUTOMODEL_LLM_BASE_URL=http://HOST:8000/v1."
            ) from exc
        if not self.model:
            raise LLMError("The vllm provider needs AUTOMODEL_LLM_MODEL (a Hugging Face model id or a local model folder).")

    def _engine(self):
        import vllm

        if self.model not in _VLLM_ENGINES:
            _VLLM_ENGINES[self.model] = vllm.LLM(model=self.model, gpu_memory_utilization=self.gpu_memory_utilization)
        return _VLLM_ENGINES[self.model]

    def complete(self, system: str, user: str) -> str:
        import vllm

        params = vllm.SamplingParams(temperature=self.temperature, max_tokens=self.max_tokens)
        try:
            outputs = self._engine().chat([{"role": "system", "content": system}, {"role": "user", "content": user}], params, use_tqdm=False)
        except Exception as exc:  # CUDA out of memory, a model without a chat template, ...
            raise LLMError(f"vLLM failed to generate with {self.model}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from exc
        text = outputs[0].outputs[0].text if outputs and outputs[0].outputs else ""
        if not text.strip():
            raise LLMError(f"vLLM returned an empty text with {self.model}.")
        return text.strip()


def make_provider(provider: str, *, base_url: str = "", model: str = "", api_key: str = "", timeout_s: float = 30.0,
                  retries: int = 2, max_tokens: int = 400) -> ChatProvider | None:
    """The configured provider, or None for ``template`` (no language model)."""
    choice = (provider or "template").strip().lower()
    if choice == "template":
        return None
    if choice == "openai":
        return OpenAICompatibleProvider(base_url=base_url, model=model, api_key=api_key, timeout_s=timeout_s, retries=retries, max_tokens=max_tokens)
    if choice == "vllm":
        return VLLMProvider(model=model, max_tokens=max_tokens)
    raise LLMError(f"Unknown LLM provider {provider!r}; set AUTOMODEL_LLM_PROVIDER to one of {', '.join(PROVIDERS)}.")


# ---- the number check ------------------------------------------------------------------------------

# A number standing on its own: not part of an identifier such as F1, R2, proba_1 or kmeans_k3.
_NUMBER = re.compile(r"(?<![A-Za-z_\d.])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![A-Za-z_\d])(\s?%)?")


def numbers_in_text(text: str) -> list[tuple[str, float, int, bool]]:
    """Each number in ``text`` as (as written, value, decimals, is_percent)."""
    found = []
    for match in _NUMBER.finditer(text or ""):
        whole, fraction, percent = match.group(1), match.group(2) or "", match.group(3)
        value = float(whole.replace(",", "") + fraction)
        found.append((match.group(0).strip(), value, max(len(fraction) - 1, 0), bool(percent)))
    return found


def _walk(value: Any) -> Iterable[float]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, (int, float)):
        if math.isfinite(value):
            yield abs(float(value))
        return
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            yield from _walk(value.item())
        except (TypeError, ValueError):
            pass
        return
    if isinstance(value, str):
        for _, number, _, _ in numbers_in_text(value):
            yield number
        return
    if isinstance(value, dict):
        yield float(len(value))
        for key, item in value.items():
            yield from _walk(key)
            yield from _walk(item)
        return
    if isinstance(value, (list, tuple, set)):
        yield float(len(value))
        for item in value:
            yield from _walk(item)


def allowed_numbers(facts: Any) -> list[float]:
    """Every number a text may state: the facts' numbers, numbers inside their strings, and sizes of their lists."""
    return sorted(set(_walk(facts)))


def _supported(value: float, decimals: int, allowed: list[float]) -> bool:
    tolerance = 0.5 * 10 ** -decimals + 1e-9
    for fact in allowed:
        # A rate such as 0.953 may be written 95.3% (or 95.3 percent); a percentage fact as itself.
        if abs(fact - value) <= tolerance or (fact <= 1.0 and abs(fact * 100 - value) <= tolerance):
            return True
    return False


def unsupported_numbers(text: str, facts: Any) -> list[str]:
    """Numbers in ``text`` that no fact supports (after rounding to the precision they are written with)."""
    allowed = allowed_numbers(facts)
    return [written for written, value, decimals, _ in numbers_in_text(text) if not _supported(value, decimals, allowed)]
