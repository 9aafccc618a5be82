"""The shared driver of a copy's identity following (shared/contracts/identity.py), against a recording session:
which of the copy's statements run, with what, and what it reports touched. The SQL itself is covered by the
services' tests against Postgres."""

import uuid
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from shared.contracts.identity import IdentityFollower
from shared.contracts.interaction import CustomerMerged, CustomerUnmerged, home

A, B, C, LEFT = (uuid.uuid4() for _ in range(4))
AT = datetime(2026, 12, 5, tzinfo=UTC)

ALIASES = sa.text("aliases")
MOVE_RETURNING = sa.text("move returning")
MOVE_SILENT = sa.text("move silent")
FOLD = sa.text("fold")
PIN_PURCHASES = sa.text("pin purchases")
PIN_NOTHING = sa.text("pin nothing")
ERASED_AMONG = sa.text("erased among")


class Result:
    def __init__(self, rows: list[Any], returns_rows: bool = True) -> None:
        self.rows, self.returns_rows = rows, returns_rows

    def all(self) -> list[Any]:
        return self.rows

    def scalars(self) -> list[Any]:
        return [r[0] if isinstance(r, tuple) else r.id for r in self.rows]

    def scalar(self) -> Any:
        return self.rows[0] if self.rows else None

    def first(self) -> Any:
        return self.rows[0] if self.rows else None


class Session:
    """Chain of `A`: A live, B merged into A, C merged into B; the merge's recorded version is `known_version`."""

    def __init__(self, follower: IdentityFollower, known_version: int | None, erased: frozenset = frozenset()) -> None:
        self.follower, self.known_version, self.erased = follower, known_version, erased
        self.calls: list[tuple[Any, dict]] = []

    async def execute(self, statement: Any, params: dict) -> Result:
        self.calls.append((statement, params))
        if statement is ERASED_AMONG:
            return Result([(i,) for i in params["ids"] if i in self.erased])
        if statement is self.follower.chain_members:
            m1, m2 = uuid.uuid4(), uuid.uuid4()
            return Result([SimpleNamespace(id=A, live=A, merge_id=None), SimpleNamespace(id=B, live=A, merge_id=m1),
                           SimpleNamespace(id=C, live=A, merge_id=m2)])  # fmt: skip
        if statement is self.follower.record_unmerge:
            return Result([self.known_version])
        if statement is MOVE_RETURNING:
            return Result([(LEFT,)])
        return Result([], returns_rows=False)

    def ran(self, statement: Any) -> list[dict]:
        return [params for s, params in self.calls if s is statement]


def follower() -> IdentityFollower:
    return IdentityFollower(
        "copy.customer_merge",
        erased_among=ERASED_AMONG,
        refresh_aliases=[ALIASES],
        move_facts=[MOVE_RETURNING, MOVE_SILENT],
        fold=[FOLD],
        pin_legacy=[(PIN_PURCHASES, ["purchase_ids", "touchpoint_ids"]), (PIN_NOTHING, [])],
    )


def merged(survivor: uuid.UUID, merged_id: uuid.UUID) -> CustomerMerged:
    return CustomerMerged(
        customer_id=survivor,
        merge_id=uuid.uuid4(),
        survivor_id=survivor,
        merged_id=merged_id,
        reason="r",
        merged_at=AT,
        version=3,
    )


def unmerged(version: int | None) -> CustomerUnmerged:
    p1, p2, t1 = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    return CustomerUnmerged(
        customer_id=A, merge_id=uuid.uuid4(), survivor_id=A, restored_id=B, purchase_ids=[p1, p2], touchpoint_ids=[t1],
        unmerged_at=AT, version=version,
    )  # fmt: skip


async def test_a_merge_moves_the_chain_and_folds_each_merged_away_member():
    f = follower()
    session = Session(f, known_version=None)
    followed = await f.follow(session, merged(A, B))
    assert session.ran(f.record_merge)[0]["merged"] == B
    [aliases] = session.ran(ALIASES)
    assert (aliases["ids"], aliases["lives"]) == ([A, B, C], [A, A, A])
    assert [p["merged"] for p in session.ran(FOLD)] == [B, C]
    assert all(p["survivor"] == A and p["at"] == AT for p in session.ran(FOLD))
    assert session.ran(PIN_PURCHASES) == []
    assert (followed.lives, followed.merged, followed.left) == ({A}, {B, C}, {LEFT})
    assert followed.touched == {A, LEFT}


async def test_the_undo_of_a_merge_the_copy_knew_unversioned_pins_what_it_lists():
    f = follower()
    session = Session(f, known_version=None)
    u = unmerged(version=None)
    await f.follow(session, u)
    assert session.ran(PIN_PURCHASES) == [{"restored": B, "chain": [A, B, C], "listed": [*u.purchase_ids, *u.touchpoint_ids]}]
    assert session.ran(PIN_NOTHING)[0]["listed"] == []
    assert session.ran(FOLD)[0]["at"] == AT


async def test_the_undo_of_a_versioned_merge_pins_nothing():
    f = follower()
    session = Session(f, known_version=7)
    await f.follow(session, unmerged(version=7))
    assert session.ran(PIN_PURCHASES) == session.ran(PIN_NOTHING) == []
    assert session.ran(MOVE_SILENT)


async def test_a_merge_of_a_customer_into_itself_changes_nothing():
    f = follower()
    session = Session(f, known_version=None)
    followed = await f.follow(session, merged(A, A))
    assert session.calls == [] and followed.touched == set()


def test_home_is_the_customer_a_fact_came_in_under():
    assert home(SimpleNamespace(customer_id=A, home_customer_id=B)) == B
    # Events from before homes existed: without the field, or with it null.
    assert home(SimpleNamespace(customer_id=A, home_customer_id=None)) == A
    assert home(SimpleNamespace(customer_id=A)) == A


async def test_a_merge_or_unmerge_naming_an_erased_customer_changes_nothing():
    """It arrived after the erasure (another partition): the erasure already ended what it knew."""
    f = follower()
    for event, erased in [(merged(A, B), {B}), (merged(A, B), {A}), (unmerged(version=7), {A})]:
        session = Session(f, known_version=7, erased=frozenset(erased))
        followed = await f.follow(session, event)
        assert [s for s, _ in session.calls] == [ERASED_AMONG] and followed.touched == set()
