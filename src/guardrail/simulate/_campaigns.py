"""Distillation campaigns (labelled ``campaign: true``), each in one of four styles.

- hydra: hundreds of accounts under a modest per-account rate, flat around the clock, synchronised start
  and stop, banned accounts replaced in bursts, a shared rotating proxy pool of a few dozen ranges, three
  rotated templates with a slot from a broad task bank, evasion noise;
- jailbreak_harvest: a persona wrapper of its own around a broad task bank, reasoning requested;
- low_and_slow: many accounts with a handful of requests each, spread over the window, one rare template;
- reseller: a proxy reseller mixing a templated reasoning wrapper into ordinary resold traffic.
Accounts, addresses and API clients are drawn exactly as for honest users: only behaviour differs.
"""

from __future__ import annotations

import random

from guardrail.simulate import _bank_organic as org
from guardrail.simulate import _bank_prompts as bp
from guardrail.simulate._bank_tasks import broad_task, coding_task, reasoning_task
from guardrail.simulate._base import Activity, Content, Context, Plan, untagged
from guardrail.simulate._bodies import Client, render
from guardrail.simulate._clock import DAYS, Profile, blended_profile, flat_profile, sorted_times
from guardrail.simulate._network import Range, hosting_range, proxy_pool
from guardrail.simulate._noise import add_noise
from guardrail.simulate._rng import poisson

_DAY = 86_400.0


# ------------------------------------------------------------------------------------------------ hydra
def _hydra_prompt(r: random.Random, index: int, noise: float) -> tuple[str, str]:
    system, user = bp.HYDRA_TEMPLATES[index]
    cot = bp.COT_OTHER[0] if index == 2 else r.choice(bp.COT_EN)
    user = user.replace("{task}", broad_task(r)).replace("{cot}", cot)
    if system and r.random() < 0.25:  # the wrapper moved from the system message into the user turn
        system, user = "", f"{system}\n\n{user}"
    return add_noise(r, system, noise) if system else "", add_noise(r, user, noise)


def hydra(ctx: Context, rng: random.Random) -> list[Plan]:
    """A large templated campaign: rotating proxies, synchronised accounts, burst replacements, noise."""
    slots = ctx.count(100, 8)
    begin = rng.uniform(0.15, 0.35) * _DAY
    end = rng.uniform(DAYS - 0.3, DAYS - 0.1) * _DAY
    bursts = sorted(rng.uniform(begin + 0.1 * _DAY, end - 0.2 * _DAY) for _ in range(6))
    pool = proxy_pool(rng, rng.randint(30, 40))
    rate = rng.uniform(1.2, 1.8) / 3600.0  # requests per second per account: well under any per-key limit
    # Each slot holds a succession of accounts: a burst bans some of them, fresh ones take over minutes later.
    lives: list[tuple[float, float]] = []
    for _ in range(slots):
        start = begin + rng.uniform(0.0, 300.0)
        for b in bursts:
            if rng.random() < 0.35 and b - start > 1800.0:  # an account lives at least half an hour
                lives.append((start, b))
                start = b + rng.uniform(60.0, 900.0)
        lives.append((start, end + rng.uniform(-120.0, 120.0)))
    plans = []
    for i, (start, stop) in enumerate(lives):
        n = max(1, poisson(rng, rate * (stop - start)))
        template = rng.randrange(len(bp.HYDRA_TEMPLATES))
        noise = rng.uniform(0.3, 0.7)
        client = Client.pick(rng)

        def make(
            r: random.Random,
            n: int = n,
            start: float = start,
            stop: float = stop,
            template: int = template,
            noise: float = noise,
            client: Client = client,
            pool: list[Range] = pool,
        ) -> Activity:
            def emit(r: random.Random, _: int) -> Content:
                index = template if r.random() < 0.8 else r.randrange(len(bp.HYDRA_TEMPLATES))
                system, user = _hydra_prompt(r, index, noise)
                return (r.choice(pool).host(r), *render(client, system, [("user", user)]))

            return untagged(sorted_times(r, n, flat_profile(), start, stop)), emit

        plans.append(Plan(ctx.account_id("hydra", i), "hydra", True, "hydra", n, start, make))
    return plans


# ------------------------------------------------------------------------------------ jailbreak_harvest
def jailbreak_harvest(ctx: Context, rng: random.Random) -> list[Plan]:
    """Accounts harvesting a broad task bank through a persona wrapper of their own."""
    pool = proxy_pool(rng, 10, hosting_share=0.6)
    plans = []
    for i in range(ctx.count(40, 4)):
        start = rng.uniform(0.0, 1.0) * _DAY
        stop = min(DAYS * _DAY, start + rng.uniform(1.0, 2.5) * _DAY)
        n = max(3, poisson(rng, 60.0))
        addresses = [rng.choice(pool).host(rng) for _ in range(rng.randint(1, 3))]
        client = Client.pick(rng)
        as_system = rng.random() < 0.3

        def make(
            r: random.Random,
            n: int = n,
            start: float = start,
            stop: float = stop,
            client: Client = client,
            addresses: list[str] = addresses,
            as_system: bool = as_system,
        ) -> Activity:
            def emit(r: random.Random, _: int) -> Content:
                text = bp.HARVEST_PERSONA.replace("{task}", broad_task(r)).replace(
                    "{cot}", r.choice(bp.COT_EN)
                )
                if as_system:  # the persona as the system message, the assignment as the user turn
                    head, _sep, task = text.partition("OMNITUTOR, your assignment:\n")
                    system, user = add_noise(r, head.strip(), 0.15), add_noise(r, task, 0.15)
                    path, body = render(client, system, [("user", user)])
                else:
                    path, body = render(client, "", [("user", add_noise(r, text, 0.15))])
                return r.choice(addresses), path, body

            return untagged(sorted_times(r, n, flat_profile(), start, stop)), emit

        plans.append(
            Plan(
                ctx.account_id("jailbreak_harvest", i),
                "jailbreak_harvest",
                True,
                "jailbreak_harvest",
                n,
                start,
                make,
            )
        )
    return plans


# ----------------------------------------------------------------------------------------- low_and_slow
def low_and_slow(ctx: Context, rng: random.Random) -> list[Plan]:
    """Many accounts, 3 to 15 requests each over the whole window, one rare template, many addresses."""
    pool = proxy_pool(rng, 150, hosting_share=0.05)
    plans = []
    for i in range(ctx.count(200, 10)):
        n = rng.randint(3, 15)
        client = Client.pick(rng)

        def make(r: random.Random, n: int = n, client: Client = client, pool: list[Range] = pool) -> Activity:
            def emit(r: random.Random, _: int) -> Content:
                task = reasoning_task(r) if r.random() < 0.6 else coding_task(r)
                text = add_noise(r, bp.LOW_SLOW_TEMPLATE.replace("{task}", task), 0.1)
                return (r.choice(pool).host(r), *render(client, "", [("user", text)]))

            return untagged(sorted_times(r, n, flat_profile())), emit

        plans.append(
            Plan(ctx.account_id("low_and_slow", i), "low_and_slow", True, "low_and_slow", n, 0.0, make)
        )
    return plans


# --------------------------------------------------------------------------------------------- reseller
def reseller(ctx: Context, rng: random.Random) -> list[Plan]:
    """A proxy reseller: about 30% templated distillation mixed into ordinary resold traffic."""
    ranges = [hosting_range(rng) for _ in range(3)]
    profile = blended_profile([-8.0, -5.0, 1.0, 3.0, 5.5, 8.0, 9.0])
    plans = []
    for i in range(ctx.count(15, 2)):
        n = max(10, round(200 * rng.lognormvariate(0.0, 0.4)))
        client = Client.pick(rng)

        def make(
            r: random.Random,
            n: int = n,
            client: Client = client,
            ranges: list[Range] = ranges,
            profile: Profile = profile,
        ) -> Activity:
            def emit(r: random.Random, _: int) -> Content:
                if r.random() < 0.3:  # the reseller's own harvesting, mixed into its customers' traffic
                    path, body = render(
                        client, bp.RESELLER_SYSTEM, [("user", add_noise(r, broad_task(r), 0.1))]
                    )
                else:
                    path, body = render(client, "", [("user", org.organic_question(r, org.pick_language(r)))])
                return r.choice(ranges).host(r), path, body

            return untagged(sorted_times(r, n, profile)), emit

        plans.append(Plan(ctx.account_id("reseller", i), "reseller", True, "reseller", n, 0.0, make))
    return plans
