"""Settings (plain, resources.settings) and the Dagster resources built on them: storage backends, the LLM, notifiers."""
