"""The model the demo protects: the repository's FastAPI integration app when it is importable, else a
minimal pure-ASGI stand-in speaking the same wire formats.

A plain install (``pip install .``, or a built wheel) ships neither FastAPI nor the ``integrations/``
folder, and the first README command must work anyway; from a checkout with FastAPI installed, the demo
runs the real integration app (``integrations.fastapi_app.build_model_app``), so the reader sees guardrail
in front of the same server the quick start uses.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from guardrail._types import ASGIApp, Receive, Scope, Send

__all__ = ["load_model_app"]

_REPLY = (
    "Here is a careful answer. The first thing to notice is that the simplest explanation usually covers "
    "most of the cases; small examples make the general rule much easier to see and to check."
)
_REPLY_TOKENS = 40


def _checkout_root() -> Path | None:
    """The repository root when guardrail runs from a source checkout (editable install), else None."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "integrations" / "fastapi_app.py").is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return None


def _integration_app() -> ASGIApp | None:
    try:
        importlib.import_module("fastapi")
    except ImportError:
        return None
    root = _checkout_root()
    try:
        module = importlib.import_module("integrations.fastapi_app")
    except ImportError:
        if root is None:
            return None
        sys.path.insert(0, str(root))
        try:
            module = importlib.import_module("integrations.fastapi_app")
        except ImportError:
            return None
    build = getattr(module, "build_model_app", None)
    if build is None:
        return None
    app: ASGIApp = build()
    return app


def _body_for(path: str, request: Any) -> dict[str, Any]:
    model = request.get("model") if isinstance(request, dict) else None
    usage_in = 0
    if path.endswith("/messages"):
        return {
            "id": "msg_demo",
            "type": "message",
            "role": "assistant",
            "model": model or "toy-1",
            "content": [{"type": "text", "text": _REPLY}],
            "stop_reason": "end_turn",
            "usage": {"input_tokens": usage_in, "output_tokens": _REPLY_TOKENS},
        }
    if path.endswith("/responses"):
        return {
            "id": "resp_demo",
            "object": "response",
            "model": model or "toy-1",
            "output": [
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": _REPLY}]}
            ],
            "usage": {
                "input_tokens": usage_in,
                "output_tokens": _REPLY_TOKENS,
                "total_tokens": _REPLY_TOKENS,
            },
        }
    return {
        "id": "chatcmpl-demo",
        "object": "chat.completion",
        "model": model or "toy-1",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": _REPLY}, "finish_reason": "stop"}
        ],
        "usage": {
            "prompt_tokens": usage_in,
            "completion_tokens": _REPLY_TOKENS,
            "total_tokens": _REPLY_TOKENS,
        },
    }


async def stand_in_app(scope: Scope, receive: Receive, send: Send) -> None:
    """A non-streaming OpenAI / Anthropic / Gemini-shaped echo of a fixed answer, with usage."""
    if scope["type"] != "http":
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body") or message["type"] != "http.request":
            break
    try:
        request = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        request = None
    body = json.dumps(_body_for(scope.get("path", ""), request)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body, "more_body": False})


def load_model_app() -> tuple[ASGIApp, str]:
    """The app to protect and a short description of it for the summary."""
    app = _integration_app()
    if app is not None:
        return app, "integrations/fastapi_app.py (toy model on FastAPI)"
    return stand_in_app, "built-in stand-in model (FastAPI integration not importable)"
