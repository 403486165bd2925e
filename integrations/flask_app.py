"""The toy OpenAI- and Anthropic-compatible model server on Flask, protected by ``GuardrailWSGI``.

    GUARDRAIL_ACCOUNT_RPM=20 flask --app integrations.flask_app run       # from the repository root

Same routes and environment variables as ``integrations/fastapi_app.py``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from guardrail.adapters import GuardrailWSGI

from . import toymodel


def build_model_app() -> Flask:
    """The unprotected toy model (guardrail is added by :func:`create_app`)."""
    api = Flask("guardrail_toy_model")

    def _reply(route: str, model_action: str = "") -> Any:
        status, payload = toymodel.answer(route, request.get_data(cache=False), model_action)
        if isinstance(payload, dict):
            return jsonify(payload), status
        return Response(payload, mimetype="text/event-stream")

    @api.get("/health")
    def health() -> Any:
        return {"status": "ok"}

    @api.get("/v1/models")
    def models() -> Any:
        return {
            "object": "list",
            "data": [{"id": toymodel.MODEL, "object": "model", "owned_by": "guardrail"}],
        }

    @api.post("/v1/chat/completions")
    def chat() -> Any:
        return _reply("chat")

    @api.post("/v1/responses")
    def responses() -> Any:
        return _reply("responses")

    @api.post("/v1/messages")
    def messages() -> Any:
        return _reply("messages")

    @api.post("/v1beta/models/<model_action>")
    def gemini(model_action: str) -> Any:
        return _reply("gemini", model_action)

    return api


def create_app(**options: Any) -> Flask:
    """The toy model behind ``GuardrailWSGI``; ``options`` override the ``GUARDRAIL_*`` environment."""
    api = build_model_app()
    api.wsgi_app = GuardrailWSGI(api.wsgi_app, **toymodel.middleware_settings(options))  # type: ignore[method-assign]
    return api


app = create_app()
