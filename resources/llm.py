"""LLMResource: the summary and question provider, chosen by configuration (template, openai, vllm)."""

from __future__ import annotations

import dagster as dg

from automodel.outputs.llm import ChatProvider, make_provider
from resources.settings import reveal


class LLMResource(dg.ConfigurableResource):
    """``template`` needs nothing; ``openai`` talks to any OpenAI-compatible endpoint (``vllm serve`` included);
    ``vllm`` runs the model in-process (optional extra, CUDA GPU)."""

    provider: str = "template"
    base_url: str = ""
    model: str = ""
    api_key: str = ""
    timeout_s: float = 30.0
    retries: int = 2
    max_tokens: int = 400

    @classmethod
    def from_settings(cls, settings) -> "LLMResource":
        return cls(provider=settings.llm_provider, base_url=settings.llm_base_url, model=settings.llm_model, api_key=settings.llm_api_key,
                   timeout_s=settings.llm_timeout_s, retries=settings.llm_retries)

    def get_provider(self) -> ChatProvider | None:
        """The provider, or None for the template; raises LLMError for a configuration that cannot work."""
        return make_provider(self.provider, base_url=self.base_url, model=self.model, api_key=reveal(self.api_key),
                             timeout_s=self.timeout_s, retries=self.retries, max_tokens=self.max_tokens)
