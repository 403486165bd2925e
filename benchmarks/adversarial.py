"""What bodies built to cost the engine cost it, against honest ones of the same size, same run.

    python benchmarks/adversarial.py

Each body goes through ``Guardrail`` (default options, ``AsyncGuard("memory://")``) in process; the
figure is the CPU time of one request (the best of three, warm), on the event loop or in guardrail's
inflating threads alike, and its status. The baselines: an honest 2 KB chat body and 8 MiB of prose.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from typing import Any

from guardrail import Guardrail
from guardrail.engine import AsyncGuard

CHAT, MESSAGES = "/v1/chat/completions", "/v1/messages"


def chat(content: Any, **extra: Any) -> bytes:
    return json.dumps({"model": "m", "messages": [{"role": "user", "content": content}], **extra}).encode()


def cases() -> list[tuple[str, str, bytes, bool]]:
    nested = b"[" * 900 + b"]" * 900
    blocks = b",".join([nested] * 4650)
    return [
        ("honest 2 KB chat", CHAT, chat("Explain how tides work and why there are two a day. " * 40), False),
        ("8 MiB prose with brackets", CHAT, chat("explain how [tides] work {x} " * 280_000), False),
        ("nested arrays, gzip twice", MESSAGES,
         b'{"model":"m","messages":[{"role":"user","content":[' + blocks + b"]}]}", True),
        ("2.7M empty arrays", CHAT,
         b'{"model":"m","messages":[' + b",".join([b"[]"] * 2_700_000) + b"]}", False),
        ("99,000 tiny messages", CHAT,
         json.dumps({"model": "m", "messages": [{"role": "user", "content": "a"}] * 99_000}).encode(), False),
        ("16,000 reversed combining marks", CHAT, chat("a" + "\u0301" * 8000 + "\u0316" * 8000), False),
        ("'<' and 7,990 spaces", CHAT, chat("<" + " " * 7990), False),
        ("4,000 reasoning cue words", CHAT, chat("展示" * 2000 + "推理" * 2000), False),
    ]  # fmt: skip


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def one(app: Any, path: str, body: bytes, coded: bool, key: str) -> tuple[int, float]:
    wire = gzip.compress(gzip.compress(body, 9), 9) if coded else body
    headers = [(b"content-length", str(len(wire)).encode()), (b"authorization", f"Bearer {key}".encode())]
    if coded:
        headers.append((b"content-encoding", b"gzip, gzip"))
    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "client": ("192.0.2.1", 5), "server": ("h", 80),
             "headers": headers}  # fmt: skip
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": wire, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    start = time.process_time()
    await app(scope, receive, send)
    return status[0], (time.process_time() - start) * 1000


async def main() -> None:
    app = Guardrail(_ok, guard=AsyncGuard("memory://"))
    for i in range(50):
        await one(app, CHAT, chat(f"warm up {i}"), False, f"w{i}")
    rows = []
    for name, path, body, coded in cases():
        runs = [await one(app, path, body, coded, f"{name}-{r}") for r in range(3)]
        status, ms = runs[0][0], min(r[1] for r in runs)
        rows.append((name, len(body), status, ms))
    prose = rows[1][3]
    print(f"{'body':34s} {'size':>10s} {'status':>6s} {'CPU ms':>8s} {'x 8 MiB prose':>14s}")
    for name, size, status, ms in rows:
        print(f"{name:34s} {size / 1024:9.0f}K {status:6d} {ms:8.2f} {ms / prose:14.2f}")


if __name__ == "__main__":
    asyncio.run(main())
