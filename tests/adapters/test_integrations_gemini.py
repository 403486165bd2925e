"""The toy model servers answer Gemini generateContent (plain and SSE stream) behind guardrail."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from integrations import fastapi_app, flask_app

BODY = {
    "systemInstruction": {"parts": [{"text": "You are a helpful assistant."}]},
    "contents": [{"role": "user", "parts": [{"text": "Write a python function that averages a list."}]}],
}
PATH = "/v1beta/models/gemini-2.5-pro:generateContent"
STREAM_PATH = "/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
HEADERS = {"x-goog-api-key": "gemini-test-key"}


def _check(payload: dict[str, object]) -> None:
    candidates = payload["candidates"]
    assert isinstance(candidates, list)
    text = candidates[0]["content"]["parts"][0]["text"]
    assert len(text.split()) >= 80
    assert "```python" in text
    assert payload["usageMetadata"]["candidatesTokenCount"] > 0  # type: ignore[index]


def test_fastapi_generate_content() -> None:
    with TestClient(fastapi_app.create_app(storage="memory://")) as client:
        r = client.post(PATH, json=BODY, headers=HEADERS)
        assert r.status_code == 200
        _check(r.json())
        assert client.post(PATH, json=BODY, headers=HEADERS).json() == r.json()  # deterministic
        s = client.post(STREAM_PATH, json=BODY, headers=HEADERS)
        assert s.status_code == 200
        events = [json.loads(line[5:]) for line in s.text.splitlines() if line.startswith("data:")]
        assert len(events) > 1
        assert events[-1]["candidates"][0]["finishReason"] == "STOP"
        assert (
            "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events)
            == r.json()["candidates"][0]["content"]["parts"][0]["text"]
        )


def test_flask_generate_content() -> None:
    client = flask_app.create_app(storage="memory://").test_client()
    r = client.post(PATH, json=BODY, headers=HEADERS)
    assert r.status_code == 200
    _check(r.get_json())
    bad = client.post("/v1beta/models/gemini-2.5-pro:countTokens", json=BODY, headers=HEADERS)
    assert bad.status_code == 400
