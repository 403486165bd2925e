"""The public surface: ``guardrail.__all__`` lists exactly the public names the package exports."""

import guardrail


def test_all_names_exist() -> None:
    for name in guardrail.__all__:
        assert hasattr(guardrail, name), name


def test_all_is_complete() -> None:
    public = {
        name
        for name, value in vars(guardrail).items()
        if not name.startswith("_") and getattr(value, "__module__", "").startswith("guardrail")
    }
    assert public <= set(guardrail.__all__), public - set(guardrail.__all__)


def test_all_is_sorted_and_unique() -> None:
    assert len(set(guardrail.__all__)) == len(guardrail.__all__)
