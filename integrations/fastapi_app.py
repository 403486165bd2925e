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

from guardrail.adapters import Guardrail

from . import toymodel


def build_model_app() -> FastAPI:
    """The unprotected toy model (guardrail is added by :func:`create_app`)."""
    api = FastAPI(title="guardrail toy model", docs_url=None, redoc_url=None, openapi_url=None)

    def _reply(route: str, raw: bytes, model_action: str = "") -> Response:
        status, payload = toymodel.answer(route, raw, model_action)
        if isinstance(payload, dict):
            return JSONResponse(payload, status_code=status)
        return StreamingResponse(payload, media_type="text/event-stream")

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
        return _reply("chat", await request.body())

    @api.post("/v1/responses")
    async def responses(request: Request) -> Response:
        return _reply("responses", await request.body())

    @api.post("/v1/messages")
    async def messages(request: Request) -> Response:
        return _reply("messages", await request.body())

    @api.post("/v1beta/models/{model_action}")
    async def gemini(model_action: str, request: Request) -> Response:
        return _reply("gemini", await request.body(), model_action)

    return api


def create_app(**options: Any) -> FastAPI:
    """The toy model behind ``Guardrail``; ``options`` override the ``GUARDRAIL_*`` environment."""
    api = build_model_app()
    api.add_middleware(Guardrail, **toymodel.middleware_settings(options))
    return api


app = create_app()
