"""A toy OpenAI- and Anthropic-compatible model server on FastAPI, protected by guardrail.

    GUARDRAIL_ACCOUNT_RPM=20 uvicorn integrations.fastapi_app:app          # from the repository root

Routes: ``POST /v1/chat/completions`` (``stream`` or not), ``/v1/responses``, ``/v1/messages`` (``stream``
or not), ``/v1beta/models/{model}:generateContent`` and ``:streamGenerateContent`` (Gemini),
``GET /v1/models`` and ``/health`` (not inspected). ``GUARDRAIL_STORAGE`` (storage URI, default
``memory://``) and ``GUARDRAIL_ACCOUNT_RPM`` (requests per minute per account) come from the environment.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.responses import Response

from guardrail.adapters import Guardrail, settings_from_env

from . import toymodel


def build_model_app() -> FastAPI:
    """The unprotected toy model (guardrail is added by :func:`create_app`)."""
    api = FastAPI(title="guardrail toy model", docs_url=None, redoc_url=None, openapi_url=None)

    async def _body(request: Request) -> Any:
        return toymodel.parse(await request.body())

    @api.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/v1/models")
    async def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": toymodel.MODEL, "object": "model", "owned_by": "guardrail"}],
        }

    @api.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return JSONResponse(toymodel.openai_error("body must be a JSON object"), status_code=400)
        if body.get("stream"):
            return StreamingResponse(toymodel.chat_completion_stream(body), media_type="text/event-stream")
        return JSONResponse(toymodel.chat_completion(body))

    @api.post("/v1/responses")
    async def responses(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return JSONResponse(toymodel.openai_error("body must be a JSON object"), status_code=400)
        return JSONResponse(toymodel.response(body))

    @api.post("/v1/messages")
    async def messages(request: Request) -> Response:
        body = await _body(request)
        if body is None:
            return JSONResponse(toymodel.anthropic_error("body must be a JSON object"), status_code=400)
        if body.get("stream"):
            return StreamingResponse(toymodel.message_stream(body), media_type="text/event-stream")
        return JSONResponse(toymodel.message(body))

    @api.post("/v1beta/models/{model_action}")
    async def gemini(model_action: str, request: Request) -> Response:
        model, _, action = model_action.partition(":")
        body = await _body(request)
        if body is None or action not in ("generateContent", "streamGenerateContent"):
            return JSONResponse(toymodel.gemini_error("expected a JSON object and :generateContent"), 400)
        if action == "streamGenerateContent":
            stream = toymodel.generate_content_stream(body, model)
            return StreamingResponse(stream, media_type="text/event-stream")
        return JSONResponse(toymodel.generate_content(body, model))

    return api


def create_app(**options: Any) -> FastAPI:
    """The toy model behind ``Guardrail``; ``options`` override the ``GUARDRAIL_*`` environment."""
    api = build_model_app()
    settings = settings_from_env()
    if "guard" in options:
        settings.pop("storage", None)  # a given guard brings its own storage
    settings.update(options)
    api.add_middleware(Guardrail, **settings)
    return api


app = create_app()
