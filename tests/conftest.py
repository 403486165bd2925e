"""Shared fixtures. Redis-backed tests skip with a reason when no server answers, except under CI
(``GUARDRAIL_REQUIRE_REDIS=1``), where a missing Redis is a failure."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

REDIS_HOST = os.environ.get("GUARDRAIL_TEST_REDIS_HOST", "127.0.0.1")
REDIS_PORT = int(os.environ.get("GUARDRAIL_TEST_REDIS_PORT", "6379"))


def _redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1.0) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a live Redis (db 15 is left alone: tests use unique key prefixes)."""
    if not _redis_answers(REDIS_HOST, REDIS_PORT):
        reason = f"no Redis answers on {REDIS_HOST}:{REDIS_PORT}"
        if os.environ.get("GUARDRAIL_REQUIRE_REDIS") == "1":
            pytest.fail(f"{reason}, but GUARDRAIL_REQUIRE_REDIS=1 (CI) requires it")
        pytest.skip(f"{reason}; start redis-server to run the Redis tests")
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
