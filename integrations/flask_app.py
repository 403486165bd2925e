"""The toy OpenAI- and Anthropic-compatible model server on Flask, protected by ``GuardrailWSGI``.

    GUARDRAIL_ACCOUNT_RPM=20 flask --app integrations.flask_app run       # from the repository root

Same routes and environment variables as ``integrations/fastapi_app.py``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request

from guardrail.adapters import GuardrailWSGI, settings_from_env

from . import toymodel


def build_model_app() -> Flask:
    """The unprotected toy model (guardrail is added by :func:`create_app`)."""
    api = Flask("guardrail_toy_model")

    def _body() -> Any:
        return toymodel.parse(request.get_data(cache=False))

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
        body = _body()
        if body is None:
            return jsonify(toymodel.openai_error("body must be a JSON object")), 400
        if body.get("stream"):
            return Response(toymodel.chat_completion_stream(body), mimetype="text/event-stream")
        return jsonify(toymodel.chat_completion(body))

    @api.post("/v1/responses")
    def responses() -> Any:
        body = _body()
        if body is None:
            return jsonify(toymodel.openai_error("body must be a JSON object")), 400
        return jsonify(toymodel.response(body))

    @api.post("/v1/messages")
    def messages() -> Any:
        body = _body()
        if body is None:
            return jsonify(toymodel.anthropic_error("body must be a JSON object")), 400
        if body.get("stream"):
            return Response(toymodel.message_stream(body), mimetype="text/event-stream")
        return jsonify(toymodel.message(body))

    @api.post("/v1beta/models/<model_action>")
    def gemini(model_action: str) -> Any:
        model, _, action = model_action.partition(":")
        body = _body()
        if body is None or action not in ("generateContent", "streamGenerateContent"):
            return jsonify(toymodel.gemini_error("expected a JSON object and :generateContent")), 400
        if action == "streamGenerateContent":
            return Response(toymodel.generate_content_stream(body, model), mimetype="text/event-stream")
        return jsonify(toymodel.generate_content(body, model))

    return api


def create_app(**options: Any) -> Flask:
    """The toy model behind ``GuardrailWSGI``; ``options`` override the ``GUARDRAIL_*`` environment."""
    api = build_model_app()
    settings = settings_from_env()
    if "guard" in options:
        settings.pop("storage", None)  # a given guard brings its own storage
    settings.update(options)
    api.wsgi_app = GuardrailWSGI(api.wsgi_app, **settings)  # type: ignore[method-assign]
    return api


app = create_app()
