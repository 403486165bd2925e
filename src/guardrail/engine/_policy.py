"""Policy: what to do with a scored cluster and with one request of it (pure).

Defaults: a cluster scoring at least ``throttle_score`` with ``min_accounts`` or more accounts is throttled
*as one*: all its accounts draw from one shared token bucket (``cluster_limit``, about the budget of one
busy honest account), so 25,000 linked accounts get the budget of one. Blocking is off by default
(``block_score=None``): a throttle degrades a false positive gracefully, a block does not. Groups of fewer
than five accounts are reported but not throttled: a campaign spreads its volume over many accounts to stay
under per-account limits, while two to four keys carry enough volume each for a plain per-account quota, and
small honest groups (a team's keys, a batch job split over a few keys) are the likeliest look-alikes.
A brand-new account whose traffic is concentrated on a flagged cluster's template joins that cluster's
bucket on its first request, so replacing a banned account buys nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from guardrail.limiter import Limit

from ._types import Action
from .store import ClusterVerdict

__all__ = ["Policy", "Rule"]

Rule = Callable[[ClusterVerdict], "Action | None"]
"""A custom rule: sees a cluster's verdict (score, size, summary) and returns an action or ``None``
(no opinion). Rules run in order after the defaults; the strictest action wins."""

#: About the budget of one busy account: 1,000 tokens a minute, 4,000 at once (a request or two at a time).
DEFAULT_CLUSTER_LIMIT = Limit(rate=1000.0 / 60.0, burst=4000.0)

_ORDER = {Action.ALLOW: 0, Action.THROTTLE: 1, Action.BLOCK: 2}


@dataclass(frozen=True, slots=True)
class Policy:
    """Configurable thresholds and budgets (costs are estimated LLM tokens: prompt + expected output).

    ``account_limit``: an optional plain per-account bucket (an operator's quota, not a detection).
    ``range_limit``: an optional bucket per client address range (the /24 of an IPv4 address, the /48 of
    an IPv6 one, as the linkage reads them), whatever the account: for servers that do not authenticate
    keys, where a fresh random key would otherwise be a fresh budget. Off by default: an office or a
    carrier-grade NAT puts many honest users behind one range.
    ``expected_output``: output tokens assumed when the request sets no maximum.
    """

    throttle_score: float = 0.8
    block_score: float | None = None
    min_accounts: int = 5
    cluster_limit: Limit = DEFAULT_CLUSTER_LIMIT
    account_limit: Limit | None = None
    range_limit: Limit | None = None
    join_share: float = 0.5
    join_max_requests: int = 200
    expected_output: int = 512
    observe_only: bool = False
    rules: Sequence[Rule] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.throttle_score <= 1.0:
            raise ValueError(f"throttle_score must be in [0, 1], got {self.throttle_score!r}")
        if self.block_score is not None and not self.throttle_score <= self.block_score <= 1.0:
            raise ValueError(f"block_score must be in [throttle_score, 1] or None, got {self.block_score!r}")
        if self.min_accounts < 2:
            raise ValueError(f"min_accounts must be >= 2, got {self.min_accounts!r}")
        if not 0.0 < self.join_share <= 1.0:
            raise ValueError(f"join_share must be in (0, 1], got {self.join_share!r}")
        if self.expected_output < 0:
            raise ValueError(f"expected_output must be >= 0, got {self.expected_output!r}")

    def cluster_action(self, verdict: ClusterVerdict) -> Action:
        """The action for a whole cluster: monotone in score (a higher score never gets a milder action)."""
        action = Action.ALLOW
        if verdict.size >= self.min_accounts:
            if self.block_score is not None and verdict.score >= self.block_score:
                action = Action.BLOCK
            elif verdict.score >= self.throttle_score:
                action = Action.THROTTLE
        for rule in self.rules:
            ruled = rule(verdict)
            if ruled is not None and _ORDER[Action(ruled)] > _ORDER[action]:
                action = Action(ruled)
        return action

    def cost(self, prompt_tokens: int, max_output_tokens: int | None) -> float:
        """Estimated LLM tokens of a request, charged up front and settled with the real usage after."""
        out = (
            self.expected_output
            if max_output_tokens is None
            else min(max_output_tokens, 4 * self.expected_output)
        )
        return float(max(1, prompt_tokens + max(0, out)))
