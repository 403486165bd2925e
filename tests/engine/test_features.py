"""Request -> observation: shingles see through cheap evasion; resent history and the system/user split
do not change what a template looks like."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from guardrail.engine._features import address_range, has_conversation, observation, shingles
from guardrail.extract import Prompt, Turn

WRAPPER = (
    "You are an expert problem solver. Produce a complete solution for the task below, explaining each "
    "step of your reasoning before the final answer."
)


def _prompt(system: str, user: str, history: tuple[Turn, ...] = ()) -> Prompt:
    turns = (*history, Turn("user", user))
    return Prompt("openai.chat", system, turns, user, None, None, False, False)


def test_case_spacing_zero_width_and_homoglyphs_do_not_change_shingles() -> None:
    base = shingles(WRAPPER)
    assert shingles(WRAPPER.upper()) == base
    assert shingles(WRAPPER.replace(" ", "  \n ")) == base
    assert shingles(WRAPPER.replace("e", "e\u200b")) == base
    assert shingles(WRAPPER.replace("o", "\u043e")) == base  # Cyrillic o


def test_a_swapped_word_keeps_most_shingles() -> None:
    a = set(shingles(WRAPPER, 1000))
    b = set(shingles(WRAPPER.replace("complete", "thorough"), 1000))
    assert len(a & b) / len(a | b) > 0.7


@given(st.text(max_size=300))
@settings(max_examples=100, deadline=None)
def test_shingles_are_bounded_sorted_and_deterministic(text: str) -> None:
    out = shingles(text, 16)
    assert len(out) <= 16
    assert list(out) == sorted(set(out))
    assert all(0 <= v < 1 << 64 for v in out)
    assert shingles(text, 16) == out


def test_cjk_text_is_shingled_by_character() -> None:
    text = "你是一名资深的专家助手。对于每一个问题\uff0c你都需要给出详细\u3001严谨\u3001完整的解答过程。"
    assert len(shingles(text, 1000)) > 20


def test_template_moved_into_system_message_keeps_its_shingles() -> None:
    task = "Write a function that merges two sorted lists."
    a, _ = observation("acct", 0.0, _prompt("", f"{WRAPPER}\n{task}"), None, b"k")
    b, _ = observation("acct", 0.0, _prompt(WRAPPER, task), None, b"k")
    assert a.segments == b.segments


def test_resent_history_is_left_out() -> None:
    history = (Turn("user", "first question about rust lifetimes"), Turn("assistant", "an answer"))
    a, _ = observation("acct", 0.0, _prompt("sys", "follow up"), None, b"k")
    b, _ = observation("acct", 0.0, _prompt("sys", "follow up", history), None, b"k")
    assert a.segments == b.segments
    assert not a.conversation and b.conversation
    assert has_conversation(_prompt("", "x", history))


def test_address_ranges() -> None:
    assert address_range("203.0.113.7") == "203.0.113.0/24"
    assert address_range("2001:db8:1:2::1") == "2001:db8:1::/48"
    assert address_range("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert address_range("not an ip") is None
    assert address_range(None) is None


def test_observation_hashes_the_range_and_never_keeps_raw_text() -> None:
    obs, _ = observation("acct", 5.0, _prompt("", WRAPPER), "203.0.113.7", b"secret")
    assert obs.prefix is not None and "203.0.113" not in obs.prefix
    assert all(isinstance(s, int) for s in obs.segments)
    none, text = observation("acct", 5.0, None, None, b"secret")
    assert none.segments == () and text == ""


def test_one_tokenisation_for_ascii_and_non_ascii_text() -> None:
    # Regression: the ASCII path used to fold each digit to "#" while non-ASCII text masked whole ids, so
    # adding one typographic apostrophe changed the shingles around every number.
    from guardrail.engine._features import _words

    ascii_text = "Task 12: add req_8f3k2 now"
    assert _words(ascii_text) == [b"task", b"#:", b"add", b"#", b"now"]
    plain = shingles(f"{WRAPPER} Task 12: add req_8f3k2 now and then report it.")
    curly = shingles(f"{WRAPPER} Task 12: add req_8f3k2 now\u2019 and then report it.")
    assert len(set(plain) & set(curly)) >= len(plain) - 3


@given(
    st.lists(st.sampled_from(["alpha", "beta", "x9", "req_8f3k2", "42", "Gamma:", "d-7"]), min_size=3),
    st.sampled_from(["\u2019", "\u00e9", "\u200b", "\u043e"]),
)
@settings(max_examples=60, deadline=None)
def test_a_non_ascii_character_changes_only_the_shingles_around_it(words: list[str], extra: str) -> None:
    from guardrail.engine._features import _words

    text = " ".join(words)
    marked = text + " tail" + extra
    # Only the last word (the one carrying the extra character) may differ.
    assert _words(marked)[:-1] == [*_words(text), b"tail"][:-1]


@given(
    st.one_of(
        st.ip_addresses(v=4).map(str),
        st.lists(st.text("0123456789", min_size=0, max_size=4), min_size=3, max_size=5).map(".".join),
    )
)
@settings(max_examples=200, deadline=None)
def test_ipv4_fast_path_agrees_with_ipaddress(ip: str) -> None:
    import ipaddress

    from guardrail.engine._features import _ipv4_range

    fast = _ipv4_range(ip)
    try:
        slow = str(ipaddress.ip_network(f"{ipaddress.IPv4Address(ip)}/24", strict=False))
    except ValueError:
        slow = None
    assert fast is None or fast == slow
    if fast is None and slow is not None:
        assert address_range(ip) == slow


_MIXED = st.text(
    st.one_of(
        st.sampled_from(
            list("ab c\t\n\x1c\x1f\x85\u00a0\u2028\u3000\u2019\u00e9\u043e\u4e2d\u0e01\u200b#-1")
        ),
        st.characters(codec="utf-8"),
    ),
    max_size=60,
)


@given(_MIXED)
@settings(max_examples=300, deadline=None)
def test_byte_split_shortcut_cuts_words_like_the_unicode_tokeniser(text: str) -> None:
    from guardrail.engine._features import _TOKEN, _words
    from guardrail.fingerprint.normalize import normalize_bytes

    data = normalize_bytes(text)
    if data.isascii():
        expected = data.split()
    else:
        decoded = data.decode("utf-8", "surrogatepass")
        expected = [w.encode("utf-8", "surrogatepass") for w in _TOKEN.findall(decoded)]
    assert _words(text) == expected


@given(
    st.lists(
        st.sampled_from(["alpha", "beta", "x9", "Gamma:", "d-7", "\u4e2d", "alpha", "beta"]), max_size=14
    ),
    st.integers(min_value=0, max_value=70),
)
@settings(max_examples=200, deadline=None)
def test_short_text_python_shingles_equal_the_numpy_ones(words: list[str], limit: int) -> None:
    # Repeated words give repeated trigrams: both paths must keep the ``limit`` smallest *distinct* hashes.
    import guardrail.engine._features as features

    text = " ".join(words)
    fast = features.shingles(text, limit)
    saved = features._SMALL_WORDS
    features._SMALL_WORDS = -1  # every text through NumPy
    try:
        assert features.shingles(text, limit) == fast
    finally:
        features._SMALL_WORDS = saved


@pytest.mark.parametrize("fill_words", [20, 300])
def test_shingles_of_a_long_repetitive_text_are_the_smallest_distinct(fill_words: int) -> None:
    # Repeats among the 64 smallest hashes (certain with 20 fill words: fewer than 64 distinct trigrams
    # in 600 and more) take the full de-duplication; checked against every distinct trigram hash.
    from guardrail.engine._features import _small_shingles, _words

    fill = [f"w{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in range(fill_words)]  # no digits: ids are masked
    text = " ".join(["one two three"] * 200 + fill)
    every = _small_shingles(_words(text), 10**6)
    assert shingles(text) == every[:64]


_WORDY = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "alpha ",
                "beta ",
                "x9 ",
                "Gamma: ",
                "d-7",
                "\u4e2d",
                " ",
                "\n",
                "\u0301",
                "\u200b",
                "\u043e",
                "\ufb01",
            ]
        ),
        st.characters(codec="utf-8"),
    ),
    max_size=40,
).map("".join)


@given(_WORDY, _WORDY, st.integers(min_value=0, max_value=70), st.integers(min_value=0, max_value=4))
@settings(max_examples=400, deadline=None)
def test_cached_system_part_gives_the_same_shingles_as_the_whole_text(
    system: str, user: str, limit: int, min_words: int
) -> None:
    # Marks, invisible characters and unspaced scripts at either side of the break; a system text of a
    # few words takes the cached path (min_words), and every call after the first hits the cache.
    import guardrail.engine._features as features

    features._system_parts.clear()
    features._seen_once.clear()
    whole = f"{system}\n{user}" if system else user
    expected = shingles(whole, limit)
    assert features.joined_shingles(system, user, limit, min_words=min_words) == expected
    assert features.joined_shingles(system, user, limit, min_words=min_words) == expected
    assert features.joined_shingles(system, user + " tail word", limit, min_words=min_words) == shingles(
        f"{whole} tail word", limit
    )


def test_observation_with_a_repeated_system_prompt_matches_the_uncached_shingles() -> None:
    system = WRAPPER * 3
    for i in range(5):
        user = f"question {i}: why is the sky blue on day {i}?"
        obs, _ = observation("acct", 1.0, _prompt(system, user), None, b"k" * 32)
        assert obs.segments == shingles(f"{system}\n{user}")


def test_elicitation_sampling_follows_the_user_turn_not_a_shared_system_prompt() -> None:
    # One application, one long system prompt: about a quarter of its requests are scored, whatever the key.
    system = WRAPPER * 6
    for secret in (b"a" * 32, b"b" * 32, b"c" * 32):
        scored = sum(
            observation("acct", 1.0, _prompt(system, f"question number {i}?"), None, secret)[0].elicitation
            is not None
            for i in range(400)
        )
        assert 60 <= scored <= 140


def test_system_cache_is_bounded_least_recently_used_and_keeps_no_text() -> None:
    import threading

    import xxhash

    import guardrail.engine._features as features

    features._system_parts.clear()
    features._seen_once.clear()
    hot = f"{WRAPPER} the hot application"
    size = features._SYSTEM_CACHE_SIZE

    def system(i: int) -> str:
        return f"{WRAPPER} variant {chr(97 + i % 26)}{chr(97 + i // 26 % 26)}{chr(97 + i // 676)}"

    def send(start: int, stop: int) -> None:
        for i in range(start, stop):
            for _ in range(2):  # admitted on the second sighting
                features.joined_shingles(system(i), "the question", min_words=0)
            features.joined_shingles(hot, "the question", min_words=0)

    workers = [threading.Thread(target=send, args=(k * 300, (k + 1) * 300)) for k in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert len(features._system_parts) == size and len(features._seen_once) <= size
    assert all(isinstance(k[0], bytes) and len(k[0]) == 16 for k in features._system_parts)
    # the hot system prompt, used after every other one, is still cached after 1,200 newcomers
    hot_key = (xxhash.xxh3_128_digest(hot.encode(), features._SEED), 64)
    assert features._system_parts.get(hot_key) is not None
    before = len(features._seen_once)
    features.joined_shingles(f"{WRAPPER} seen once only", "q", min_words=0)
    assert len(features._seen_once) in (before, before + 1) and len(features._system_parts) == size


def test_a_system_prompt_seen_once_is_not_cached() -> None:
    import guardrail.engine._features as features

    features._system_parts.clear()
    features._seen_once.clear()
    text = f"{WRAPPER} with a date: 2026-12-03"
    assert features.joined_shingles(text, "q", min_words=0) == shingles(f"{text}\nq")
    assert not features._system_parts
    assert features.joined_shingles(text, "q", min_words=0) == shingles(f"{text}\nq")
    assert len(features._system_parts) == 1
