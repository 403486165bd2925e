"""Client addresses drawn from realistic ranges.

Honest users and campaigns draw from the same kinds of networks: residential broadband and mobile carriers
in many countries, cloud hosting, offices. A campaign differs only in *how* it uses them (many accounts
rotating through a shared pool of /24 ranges), never in the literal shape of its addresses, so a detector
cannot cheat on an address pattern.
"""

from __future__ import annotations

import ipaddress
import random

# First two octets of broadband / mobile networks (Americas, Europe, Asia, Africa, Oceania).
_RESIDENTIAL_V4 = (
    (24, 5), (24, 61), (47, 144), (50, 35), (67, 180), (68, 44), (69, 118), (71, 202), (73, 15), (73, 92),
    (75, 83), (76, 102), (98, 207), (99, 38), (104, 162), (108, 26), (174, 62), (184, 170), (2, 56),
    (5, 146), (31, 18), (37, 120), (46, 223), (62, 178), (77, 4), (78, 33), (79, 143), (80, 43), (81, 97),
    (82, 15), (83, 52), (84, 171), (85, 240), (86, 150), (87, 122), (88, 66), (89, 212), (90, 74),
    (91, 64), (92, 40), (93, 104), (94, 5), (95, 91), (109, 190), (151, 40), (176, 9), (178, 197),
    (188, 106), (212, 59), (213, 47), (217, 82), (1, 145), (14, 32), (27, 96), (36, 70), (39, 110),
    (42, 98), (49, 207), (58, 182), (59, 12), (60, 50), (101, 178), (110, 39), (111, 92), (112, 134),
    (114, 30), (116, 88), (118, 101), (119, 73), (120, 229), (121, 167), (122, 172), (124, 43),
    (125, 230), (126, 15), (180, 94), (182, 70), (183, 89), (202, 83), (203, 27), (210, 6), (219, 90),
    (220, 245), (177, 37), (179, 108), (181, 46), (186, 22), (187, 100), (189, 6), (190, 18), (191, 223),
    (200, 150), (201, 17), (41, 13), (102, 89), (105, 112), (154, 66), (196, 207), (197, 210),
)  # fmt: skip
# Mobile carriers put many subscribers behind few NAT addresses (an honest form of address sharing).
_MOBILE_V4 = ((172, 56), (174, 205), (107, 77), (37, 228), (46, 114), (92, 40), (106, 200), (223, 24))
# Cloud and hosting providers (batch jobs, resellers, companies' egress, some proxies).
_HOSTING_V4 = (
    (3, 90), (13, 57), (18, 204), (34, 72), (35, 199), (44, 201), (52, 14), (54, 160), (20, 42),
    (40, 76), (51, 15), (64, 227), (104, 248), (138, 68), (139, 59), (143, 198), (157, 245), (159, 203),
    (161, 35), (164, 90), (167, 71), (178, 62), (185, 199), (188, 165), (195, 201), (45, 77), (5, 161),
)  # fmt: skip
_RESIDENTIAL_V6 = (
    "2601:", "2603:", "2605:", "2a02:", "2a01:", "2003:", "2a00:", "2400:", "2404:", "2406:", "2408:",
    "240e:", "2800:", "2804:", "2c0f:",
)  # fmt: skip


class Range:
    """A /24 (IPv4) or /64 (IPv6) network from which host addresses are drawn."""

    __slots__ = ("_prefix", "_v6")

    def __init__(self, prefix: str, v6: bool) -> None:
        self._prefix = prefix
        self._v6 = v6

    def host(self, rng: random.Random) -> str:
        """One address inside the range."""
        if self._v6:
            groups = ":".join(f"{rng.getrandbits(16):x}" for _ in range(4))
            return str(ipaddress.IPv6Address(f"{self._prefix}:{groups}"))
        return f"{self._prefix}.{rng.randint(2, 254)}"

    def __repr__(self) -> str:
        return f"Range({self._prefix!r})"


def _v4_range(rng: random.Random, table: tuple[tuple[int, int], ...]) -> Range:
    a, b = rng.choice(table)
    return Range(f"{a}.{b}.{rng.randint(0, 255)}", v6=False)


def _v6_range(rng: random.Random) -> Range:
    head = rng.choice(_RESIDENTIAL_V6)
    tail = ":".join(f"{rng.getrandbits(16):x}" for _ in range(3))
    return Range(head + tail, v6=True)


def residential_range(rng: random.Random, *, v6_share: float = 0.2) -> Range:
    """A home broadband range (IPv6 for about a fifth of users, as in real traffic)."""
    return _v6_range(rng) if rng.random() < v6_share else _v4_range(rng, _RESIDENTIAL_V4)


def mobile_range(rng: random.Random) -> Range:
    """A mobile carrier's NAT range (few addresses shared by many subscribers)."""
    return _v4_range(rng, _MOBILE_V4)


def hosting_range(rng: random.Random) -> Range:
    """A cloud or hosting provider's range."""
    return _v4_range(rng, _HOSTING_V4)


def proxy_pool(
    rng: random.Random, size: int, *, v6_share: float = 0.1, hosting_share: float = 0.2
) -> list[Range]:
    """A rotating proxy provider's pool: mostly residential ranges, some hosting, a few IPv6."""
    pool: list[Range] = []
    for _ in range(size):
        r = rng.random()
        if r < v6_share:
            pool.append(_v6_range(rng))
        elif r < v6_share + hosting_share:
            pool.append(hosting_range(rng))
        else:
            pool.append(_v4_range(rng, _RESIDENTIAL_V4))
    return pool


def mobile_nat_pool(rng: random.Random, size: int) -> list[str]:
    """Carrier-grade NAT addresses shared by many honest subscribers."""
    ranges = [mobile_range(rng) for _ in range(max(1, size // 8))]
    return [rng.choice(ranges).host(rng) for _ in range(size)]


class World:
    """Networks that unrelated honest users share: carrier NAT, campus and office NAT, commercial VPNs.

    These are the honest forms of address sharing a detector must tolerate: many unrelated accounts behind
    one carrier or campus address, and VPN users rotating through a provider's ranges much as a campaign
    rotates through its proxies.
    """

    __slots__ = ("campus", "mobile", "vpn")

    def __init__(self, rng: random.Random, scale: float) -> None:
        self.mobile = mobile_nat_pool(rng, max(16, round(60 * scale)))
        campus_ranges = [residential_range(rng, v6_share=0.0) for _ in range(max(2, round(8 * scale)))]
        self.campus = [r.host(rng) for r in campus_ranges for _ in range(2)]
        self.vpn = [hosting_range(rng) for _ in range(max(4, round(25 * scale)))]


class HomeAddress:
    """An honest user's addresses: home ranges, sometimes a phone, a campus or a VPN; sticky hosts."""

    __slots__ = ("_addresses", "_vpn", "_weights")

    def __init__(self, rng: random.Random, world: World) -> None:
        home = residential_range(rng)
        addresses = [home.host(rng)]
        weights = [1.0]
        if rng.random() < 0.3:  # a second place (work, a partner's flat)
            addresses.append(residential_range(rng).host(rng))
            weights.append(0.3)
        if rng.random() < 0.35:  # a phone behind carrier NAT
            addresses.append(rng.choice(world.mobile))
            weights.append(0.4)
        if rng.random() < 0.08:  # a student or employee behind a campus NAT
            addresses.append(rng.choice(world.campus))
            weights.append(1.5)
        if rng.random() < 0.1:  # the home address changed during the window (DHCP lease)
            addresses.append(home.host(rng))
            weights.append(0.5)
        # About one user in twenty sends most requests through a commercial VPN (a fresh exit each time).
        self._vpn: list[Range] = world.vpn if rng.random() < 0.05 else []
        self._addresses = addresses
        self._weights = weights

    def pick(self, rng: random.Random) -> str:
        """The address of one request."""
        if self._vpn and rng.random() < 0.8:
            return rng.choice(self._vpn).host(rng)
        return rng.choices(self._addresses, self._weights)[0]
