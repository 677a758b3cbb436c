"""What a run gives back: dashboard, summary, LLM providers, questions (ask), action recipes' engine."""
