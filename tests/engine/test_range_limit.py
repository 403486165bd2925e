"""``Policy(range_limit=...)``: one bucket per client address range, whatever the account (for servers that
do not authenticate keys, where each fresh key would otherwise be a fresh budget)."""

from __future__ import annotations

import json
import uuid

import pytest

from guardrail.engine import Action, Guard, Policy, RequestFacts
from guardrail.limiter import Limit

BODY = json.dumps({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello there."}]})
PER_RANGE = Limit(rate=1e-6, burst=3 * 20.0)  # about three requests of this size (prompt + 10 output)


def facts(account: str, ip: str) -> RequestFacts:
    return RequestFacts(account=account, ip=ip, path="/v1/chat/completions", body=BODY)


@pytest.mark.parametrize("storage", ["memory://", pytest.param("redis", marks=pytest.mark.redis)])
def test_fresh_keys_from_one_range_share_its_budget(storage: str, request: pytest.FixtureRequest) -> None:
    if storage == "redis":
        storage = request.getfixturevalue("redis_url")
    guard = Guard(storage, policy=Policy(range_limit=PER_RANGE), namespace=f"rl{uuid.uuid4().hex[:8]}")
    try:
        cost = guard.core.prepare(facts("x", "203.0.113.1")).cost
        budget = int(PER_RANGE.burst // cost)
        decisions = [guard.check(facts(f"key-{i}", f"203.0.113.{i % 200}")) for i in range(budget + 2)]
        assert [d.action for d in decisions[:budget]] == [Action.ALLOW] * budget
        assert all(d.action is Action.THROTTLE for d in decisions[budget:])
        assert "address range over its limit" in decisions[-1].reasons
        assert "account over its own limit" not in decisions[-1].reasons
        other = guard.check(facts("key-new", "198.51.100.7"))  # another range: its own budget
        assert other.action is Action.ALLOW
        assert (
            guard.check(RequestFacts(account="no-ip", ip=None, path="/v1/chat/completions", body=BODY)).action
            is Action.ALLOW
        )
    finally:
        guard.close()


def test_off_by_default() -> None:
    guard = Guard()
    try:
        assert all(guard.check(facts(f"k{i}", "203.0.113.9")).action is Action.ALLOW for i in range(50))
    finally:
        guard.close()
