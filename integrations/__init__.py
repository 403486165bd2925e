"""Runnable integrations: toy OpenAI/Anthropic-compatible model servers protected by guardrail, and recipes
for vLLM and LiteLLM. Run from the repository root, e.g. ``uvicorn integrations.fastapi_app:app``."""
