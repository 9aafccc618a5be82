"""How a copy of interaction's facts follows its merges and unmerges, whatever order they arrive in.

Interaction (the owner of identity) gives each fact (purchase, refund, touchpoint, feedback) a `home`: the
customer whose identifier the fact came in under. It never changes; the fact belongs to the live end of
its home's chain of merges in force (`live(home)`), which is what interaction's own merge and unmerge move
it to. Merge and unmerge events travel keyed by the survivor and facts keyed by their customer of the moment,
so on a topic with several partitions a copy receives them in any order: a chain A←B, C←A may arrive as
C←A first, a purchase of B after its unmerge, an unmerge before its merge.

So a copy keeps no "current survivor" it updates in arrival order. It keeps the set of merges it has heard
of, each once (`merge_id`) and either in force or undone — a merge only ever goes from in force to undone, so
an undo that arrives first simply wins — and derives every fact's owner as `live(home)` over the merges in
force. After all events arrived, that set and so every owner equals interaction's, in any arrival order.
While an undo is still on its way, one id may have two merges in force: the owner's `version` (its identity
sequence, in commit order; shared/contracts/ordering.py's rule) says the newer one holds.

Erasure: interaction erases a customer together with every id merged into it, and publishes one
`customer.erased` per id, keyed by that id. A fact is keyed by its customer of the moment, not its home, so
a fact of home B published while B was merged into A may reach a copy after B's erasure (they travel on
different partitions): placed at live(B) then, it would make B a customer again in the copy, and no later
event would remove it. So a copy remembers every erased id (`remember_erased_sql`, ids only: no personal
data) and drops a fact whose home is one (`not_erased_sql`); ids are never reused (a customer who comes back
after an erasure gets a new one). Facts that arrived before the erasure went with it; one of a home that
was never erased is kept even if its customer of the moment was (an unmerge restored the home before). A
merge or unmerge naming an erased id changes nothing either: the erasure already ended the merges it knew
(the ids merged into the customer at its erasure were erased with it, the others are live on their own).

The statements below are the plumbing every copy shares; `table` is the copy's merge table, with columns
(merge_id, survivor_id, merged_id, version, undone). `IdentityFollower` drives them for a copy: it applies a
merge or unmerge with the copy's own statements (its aliases, fact tables, what a merged-away id holds).
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.interaction import CustomerMerged, CustomerUnmerged


def record_merge_sql(table: str) -> str:
    """Remember a merge; one already known (in force or undone by an earlier-arriving unmerge) stays as it is."""
    return (
        f"INSERT INTO {table} (merge_id, survivor_id, merged_id, version, undone) "
        "VALUES (:merge_id, :survivor, :merged, :version, false) ON CONFLICT (merge_id) DO NOTHING"
    )


def record_unmerge_sql(table: str) -> str:
    """Mark a merge undone (remembering it undone if its merge has not arrived yet). Returns the merge's
    version as the copy knows it: null for a merge from before identity versions (see `pin_legacy_unmerge_sql`)."""
    return (
        f"INSERT INTO {table} (merge_id, survivor_id, merged_id, version, undone) "
        "VALUES (:merge_id, :survivor, :merged, :version, true) "
        f"ON CONFLICT (merge_id) DO UPDATE SET undone = true, updated_at = now() RETURNING version"
    )


def erase_merges_sql(table: str) -> str:
    """An erasure ends the merges that name any of `:ids`: they are marked undone, not deleted. A merge only goes
    from in force to undone: a copy whose merge table is written by more than one consumer (each at its own
    offset) would otherwise record a deleted merge again, in force, when the consumer behind reaches the merge's
    event, and the consumer ahead (past the undo and the erasure) would place facts by it. The row holds ids
    only (no personal data)."""
    return (
        f"UPDATE {table} SET undone = true, updated_at = now() "
        "WHERE (merged_id = ANY(CAST(:ids AS uuid[])) OR survivor_id = ANY(CAST(:ids AS uuid[]))) AND NOT undone"
    )


def remember_erased_sql(table: str) -> str:
    """Remember that the customers `:ids` were erased (`table`: the copy's, one uuid column `customer_id`)."""
    return f"INSERT INTO {table} (customer_id) SELECT unnest(CAST(:ids AS uuid[])) ON CONFLICT DO NOTHING"


def erased_among_sql(table: str) -> str:
    """Which of `:ids` were erased (returns customer_id)."""
    return f"SELECT customer_id FROM {table} WHERE customer_id = ANY(CAST(:ids AS uuid[]))"


def not_erased_sql(table: str, column: str) -> str:
    """A condition for a statement storing facts: the customer in `column` (a fact's home) was not erased."""
    return f"NOT EXISTS (SELECT 1 FROM {table} erased WHERE erased.customer_id = {column})"


def not_merged_away_sql(aliases: str, column: str) -> str:
    """A condition: the customer in `column` is no merged-away id (`aliases`: the copy's alias table). Such an id's
    row may still hold copies of other owners' facts (its value, its stage), kept for an unmerge that restores
    it; it is no customer of its own meanwhile (no population, no reconcile)."""
    return f"NOT EXISTS (SELECT 1 FROM {aliases} al WHERE al.merged_id = {column})"


def _in_force(table: str) -> str:
    # One merge in force per merged id: the newest by the owner's version (see the module's docstring).
    return (
        f"edge AS (SELECT DISTINCT ON (merged_id) merge_id, merged_id, survivor_id FROM {table} "
        "WHERE NOT undone ORDER BY merged_id, version DESC NULLS LAST, merge_id)"
    )


def live_ctes(table: str) -> str:
    """The `WITH RECURSIVE` clause of `live_sql`, ending in the CTE `live(id, live)`: for a statement that
    places a batch's facts at their live customers in the same round trip (`live_ctes(t) + ", stored AS (…)"`)."""
    return f"""
WITH RECURSIVE up(id, at, depth) AS (
    SELECT id, id, 0 FROM unnest(CAST(:ids AS uuid[])) AS i(id)
    UNION ALL
    SELECT up.id, e.survivor_id, up.depth + 1
    FROM up CROSS JOIN LATERAL (SELECT survivor_id FROM {table} WHERE merged_id = up.at AND NOT undone
                                ORDER BY version DESC NULLS LAST, merge_id LIMIT 1) e
    WHERE up.depth < 100
),
live AS (SELECT DISTINCT ON (id) id, at AS live FROM up ORDER BY id, depth DESC)"""


def live_sql(table: str) -> str:
    """live(id) of each of `:ids` (itself if it is live): returns (id, live). It walks up from the ids only, one
    index lookup per step (the merge in force per merged id, as `_in_force` chooses it), so a copy can place
    each batch of facts without reading every merge it knows."""
    return live_ctes(table) + "\nSELECT id, live FROM live\n"


def chain_members_sql(table: str) -> str:
    """`:ids` and every id merged into them, transitively, by merges in force: the homes whose live customer
    changes when a merge of one of `:ids` is made or undone. Returns (id, live, merge_id): each one's live
    customer and the merge in force that takes it there (null: it is live itself)."""
    return f"""
WITH RECURSIVE {_in_force(table)},
down(id) AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]))
    UNION
    SELECT e.merged_id FROM down JOIN edge e ON e.survivor_id = down.id
),
up(id, at, first_merge, depth) AS (
    SELECT id, id, CAST(NULL AS uuid), 0 FROM down
    UNION ALL
    SELECT up.id, e.survivor_id, coalesce(up.first_merge, e.merge_id), up.depth + 1
    FROM up JOIN edge e ON e.merged_id = up.at WHERE up.depth < 100
)
SELECT DISTINCT ON (id) id, at AS live, first_merge AS merge_id FROM up ORDER BY id, depth DESC
"""


def pin_legacy_unmerge_sql(table: str, listed_column: str) -> list[str]:
    """The undo of a merge from before identity versions and homes existed (`record_unmerge_sql` returned a null
    version: the merge's event had none, or the copy's upgrade took it over) moves exactly the facts it lists,
    as copies did then: facts moved by such a merge got their survivor as home at the upgrade, so the listed
    ones get the restored customer as home and the others of its chain (`:chain`, from `chain_members_sql`)
    keep the customer they are with now. Undos of versioned merges need none of this: their facts carry homes,
    and the list is exactly the facts whose home is in the chain."""
    return [
        f"UPDATE {table} SET home_customer_id = :restored, updated_at = now() "
        f"WHERE {listed_column} = ANY(CAST(:listed AS uuid[])) AND home_customer_id <> :restored",
        f"UPDATE {table} SET home_customer_id = customer_id, updated_at = now() "
        f"WHERE home_customer_id = ANY(CAST(:chain AS uuid[])) AND home_customer_id <> customer_id "
        f"AND NOT {listed_column} = ANY(CAST(:listed AS uuid[]))",
    ]


def placement_lock_sql(copy: str, exclusive: bool) -> str:
    """A transaction-scoped lock on the placement of one copy's facts (`copy`: a name of its own, e.g. the inbox's).

    The copy's consumers run side by side (replicas split the topic's partitions), each batch in its own READ
    COMMITTED transaction, and nothing else orders them: a batch placing facts at live(home) and a batch making
    or undoing a merge of those homes never see each other's uncommitted rows, so a fact placed at the old live
    customer while the merge moves the chain's facts stays there once both commit (the merge's move ran before
    the fact existed). Batches that only place facts take it shared (they run side by side); a batch with a
    merge, unmerge or erasure takes it exclusive, for the whole transaction (taken once, before the batch reads
    any merge: a shared lock is never upgraded, which could deadlock two batches). Then either the facts were
    committed before the identity event's move reads them, or the merge was committed before the facts' live
    customers are read."""
    fn = "pg_advisory_xact_lock" if exclusive else "pg_advisory_xact_lock_shared"
    return f"SELECT {fn}(hashtextextended('identity-placement:{copy}', 0))"


@dataclass(frozen=True)
class Followed:
    """What a merge or unmerge changed: the chain's live customers, its members merged away (their own rows
    were folded), and the customers facts left (the move statements that return rows say which)."""

    lives: set[uuid.UUID] = field(default_factory=set)
    merged: set[uuid.UUID] = field(default_factory=set)
    left: set[uuid.UUID] = field(default_factory=set)

    @property
    def touched(self) -> set[uuid.UUID]:
        """The customers whose facts may have changed."""
        return self.lives | self.left


class IdentityFollower:
    """Applies interaction's merges and unmerges to one copy of its facts (`merges`: the copy's merge table;
    `erased_among`: the copy's statement saying which of `:ids` were erased, see "Erasure" above).

    The copy's statements, all run with the chain of the merged id (`chain_members_sql`):
    - `refresh_aliases`: replace the chain's aliases; params `:ids`, `:lives`, `:merge_ids` (per member).
    - `move_facts`: facts whose home is in the chain go to its live customer; params `:ids` (homes), `:lives`.
      One that returns rows returns the customers facts left.
    - `fold`: once per member merged away: what it holds besides facts; params `:merged`, `:survivor` (its
      live customer) and `:at` (when the merge or unmerge happened).
    - `pin_legacy`: (statement, the unmerge's lists it reads) for the undo of a merge from before identity
      versions (`pin_legacy_unmerge_sql`); params `:restored`, `:chain`, `:listed` (the named lists' ids).
    """

    def __init__(
        self,
        merges: str,
        *,
        erased_among: sa.TextClause,
        move_facts: Sequence[sa.TextClause],
        refresh_aliases: Sequence[sa.TextClause] = (),
        fold: Sequence[sa.TextClause] = (),
        pin_legacy: Sequence[tuple[sa.TextClause, Sequence[str]]] = (),
    ) -> None:
        self.erased_among = erased_among
        self.record_merge = sa.text(record_merge_sql(merges))
        self.record_unmerge = sa.text(record_unmerge_sql(merges))
        self.chain_members = sa.text(chain_members_sql(merges))
        self.move_facts = list(move_facts)
        self.refresh_aliases = list(refresh_aliases)
        self.fold = list(fold)
        self.pin_legacy = list(pin_legacy)

    async def follow(self, session: AsyncSession, p: CustomerMerged | CustomerUnmerged) -> Followed:
        """Records the merge (or its undo) and moves everything whose home's live customer it changes."""
        merged = p.merged_id if isinstance(p, CustomerMerged) else p.restored_id
        if merged == p.survivor_id:
            return Followed()
        if (await session.execute(self.erased_among, {"ids": [merged, p.survivor_id]})).first() is not None:
            return Followed()  # arrived after an erasure it names: the erasure already ended it (module docstring)
        params = {"merge_id": p.merge_id, "survivor": p.survivor_id, "merged": merged, "version": p.version}
        if isinstance(p, CustomerMerged):
            await session.execute(self.record_merge, params)
            at = p.merged_at
        else:
            if (await session.execute(self.record_unmerge, params)).scalar() is None:
                chain = list((await session.execute(self.chain_members, {"ids": [merged]})).scalars())
                for statement, lists in self.pin_legacy:
                    listed = [i for name in lists for i in getattr(p, name)]
                    await session.execute(statement, {"restored": merged, "chain": chain, "listed": listed})
            at = p.unmerged_at
        return await self._follow_chain(session, merged, at)

    async def _follow_chain(self, session: AsyncSession, merged: uuid.UUID, at: object) -> Followed:
        # Every id whose live customer a merge or unmerge of `merged` may change: its alias, facts and the rest
        # follow live(home).
        rows = (await session.execute(self.chain_members, {"ids": [merged]})).all()
        params = {"ids": [r.id for r in rows], "lives": [r.live for r in rows], "merge_ids": [r.merge_id for r in rows]}
        for statement in self.refresh_aliases:
            await session.execute(statement, params)
        followed = Followed(lives={r.live for r in rows})
        for statement in self.move_facts:
            # A text statement's result is a cursor's: an UPDATE without RETURNING has no rows to read.
            result = cast(sa.CursorResult, await session.execute(statement, params))
            if result.returns_rows:
                followed.left.update(result.scalars())
        for r in rows:
            if r.id != r.live:
                for statement in self.fold:
                    await session.execute(statement, {"survivor": r.live, "merged": r.id, "at": at})
                followed.merged.add(r.id)
        return followed
