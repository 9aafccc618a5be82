"""`shared/group_commit.Grouped` with more than one group in flight (the gateway's event posts)."""

import asyncio

import pytest

from shared.group_commit import Grouped


class Flaky(Exception):
    pass


async def test_at_most_in_flight_groups_run_and_the_next_forms_meanwhile() -> None:
    running, peak, groups = 0, 0, []
    release = asyncio.Event()

    async def run(works: list[int]) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        groups.append(list(works))
        await release.wait()
        running -= 1
        return [w * 10 for w in works]

    grouped: Grouped[int, int] = Grouped(run, is_transient=lambda exc: False, max_wait_s=0, in_flight=2)
    first = [asyncio.create_task(grouped.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.01)
    second = asyncio.create_task(grouped.submit(3))
    await asyncio.sleep(0.01)
    later = [asyncio.create_task(grouped.submit(i)) for i in (4, 5, 6)]
    await asyncio.sleep(0.01)
    assert groups == [[1, 2], [3]]  # two groups in flight; 4, 5 and 6 wait for a slot
    assert not grouped.idle
    release.set()
    assert await asyncio.gather(*first, second, *later) == [10, 20, 30, 40, 50, 60]
    assert groups[2] == [4, 5, 6]  # they formed one group while the slots were taken
    assert peak == 2
    await asyncio.sleep(0)
    assert grouped.idle


async def test_a_failed_group_is_retried_one_work_at_a_time_and_a_transient_one_is_not() -> None:
    calls: list[list[str]] = []

    async def run(works: list[str]) -> list[str]:
        calls.append(list(works))
        if "poison" in works and len(works) > 1:
            raise ValueError("cannot run together")
        if "down" in works:
            raise Flaky("the other side is down")
        return [w.upper() for w in works]

    grouped: Grouped[str, str] = Grouped(run, is_transient=lambda exc: isinstance(exc, Flaky), max_wait_s=0.01, in_flight=2)
    results = await asyncio.gather(grouped.submit("a"), grouped.submit("poison"), grouped.submit("b"))
    assert results == ["A", "POISON", "B"]
    assert calls == [["a", "poison", "b"], ["a"], ["poison"], ["b"]]
    calls.clear()
    outcomes = await asyncio.gather(grouped.submit("c"), grouped.submit("down"), return_exceptions=True)
    assert all(isinstance(o, Flaky) for o in outcomes)  # the whole group fails with it: each may resend
    assert calls == [["c", "down"]]


@pytest.mark.parametrize("in_flight", [1, 3])
async def test_every_work_is_answered_under_load(in_flight: int) -> None:
    async def run(works: list[int]) -> list[int]:
        await asyncio.sleep(0.001)
        return works

    grouped: Grouped[int, int] = Grouped(run, is_transient=lambda exc: False, max_wait_s=0, max_size=7, in_flight=in_flight)
    assert await asyncio.gather(*(grouped.submit(i) for i in range(200))) == list(range(200))
    assert grouped.largest <= 7


async def test_work_that_waited_during_a_group_goes_at_once_after_it() -> None:
    """Only a group started from idle waits `max_wait_s` for company: work that arrived while a group ran has
    waited already (docs/interaction.md, "Group commit")."""
    release = asyncio.Event()
    groups: list[list[int]] = []

    async def run(works: list[int]) -> list[int]:
        groups.append(list(works))
        await release.wait()
        return works

    # max_size 2: the first two go without waiting; an hour's wait would show as a timeout below.
    grouped: Grouped[int, int] = Grouped(run, is_transient=lambda exc: False, max_wait_s=3600, max_size=2)
    first = [asyncio.create_task(grouped.submit(i)) for i in (1, 2)]
    await asyncio.sleep(0.01)
    later = asyncio.create_task(grouped.submit(3))
    await asyncio.sleep(0.01)
    assert groups == [[1, 2]]
    release.set()
    async with asyncio.timeout(10):
        assert await asyncio.gather(*first, later) == [1, 2, 3]
    assert groups == [[1, 2], [3]]
