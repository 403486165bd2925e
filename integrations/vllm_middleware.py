"""guardrail inside vLLM's OpenAI-compatible server.

vLLM takes extra ASGI middleware by import path and adds it with ``app.add_middleware(cls)`` (no options)::

    GUARDRAIL_STORAGE=redis://127.0.0.1:6379/0 GUARDRAIL_ACCOUNT_RPM=60 \\
        vllm serve MODEL --middleware guardrail.adapters.GuardrailFromEnv

``GuardrailFromEnv`` is importable from the installed package, so nothing from this repository needs to be on
vLLM's path; options come from ``GUARDRAIL_*`` variables (see guardrail/adapters/_env.py). This module only
re-exports it, for ``--middleware integrations.vllm_middleware.Middleware`` when run from a checkout.
"""

from __future__ import annotations

from guardrail.adapters import GuardrailFromEnv as Middleware

__all__ = ["Middleware"]
