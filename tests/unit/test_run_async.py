"""The loop every entry point runs on hands back the coroutine's result and
errors as they are, and never formats the result: a backtest's is large, and
asyncio's way out would repr it twice for nothing."""

from __future__ import annotations

import pytest

from tradewind.runtime.loop import run_async


class Counted:
    """Counts its reprs (an exception raised there would be swallowed)."""

    def __init__(self) -> None:
        self.reprs = 0

    def __repr__(self) -> str:
        self.reprs += 1
        return "Counted()"


def test_the_result_comes_back_unformatted() -> None:
    value = Counted()

    async def main() -> Counted:
        return value

    assert run_async(main()) is value
    assert value.reprs == 0


def test_an_error_comes_back_as_raised() -> None:
    async def main() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        run_async(main())
