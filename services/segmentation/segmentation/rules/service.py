"""Rule segments: preview, create, and keep current (for the touched customers per batch, for all on each run)."""

import json
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.identity import not_merged_away_sql
from shared.messaging.outbox import Outbox
from shared.problems import DomainError, NotFound

from segmentation.rules import repository
from segmentation.rules.language import compile_rule, uses_rfm, validate
from segmentation.rules.repository import latest_run_id
from segmentation.segments.membership import Segment, movement, notify_relay, publish_params, rule_diff

SEGMENT_NAMESPACE = uuid.UUID("5e6d0000-0000-4000-8000-00000000ffff")
DEFAULT_RFM_FAMILY = "rfm:default"


class SegmentExists(DomainError):
    status, slug, title = 409, "segment-exists", "Segment key already taken"


class SegmentArchived(DomainError):
    status, slug, title = 409, "segment-archived", "Segment archived"


class NotARuleSegment(DomainError):
    status, slug, title = 409, "not-a-rule-segment", "Only rule segments are edited or archived"


def segment_id_for(key: str) -> uuid.UUID:
    """Segment ids are derived from their stable keys, so every run and replica agrees on them."""
    return uuid.uuid5(SEGMENT_NAMESPACE, key)


def _from_clause(node: dict) -> str:
    clause = """FROM segmentation.customer_aggregate a
LEFT JOIN segmentation.purchase_summary ps ON ps.customer_id = a.customer_id AND ps.currency = CAST(:currency AS text)"""
    if uses_rfm(node):
        clause += """
LEFT JOIN segmentation.run_result rr ON rr.run_id = CAST(:rfm_run_id AS uuid) AND rr.customer_id = a.customer_id
LEFT JOIN segmentation.segment rs ON rs.segment_id = rr.segment_id"""
    return clause


async def _matching(session: AsyncSession, node: dict, currency: str, customer_ids: list | None) -> tuple[str, dict]:
    compiled = compile_rule(node)
    scope = "AND a.customer_id = ANY(CAST(:customer_ids AS uuid[]))" if customer_ids is not None else ""
    # A merged-away id is no customer of its own: its row may still hold the copies of its value and stage.
    live = not_merged_away_sql("segmentation.customer_alias", "a.customer_id")
    sql = f"SELECT a.customer_id {_from_clause(node)} WHERE {compiled.sql} AND {live} {scope}"
    params: dict[str, Any] = {**compiled.params, "currency": currency, "now": datetime.now(UTC)}
    if uses_rfm(node):
        params["rfm_run_id"] = await latest_run_id(session, DEFAULT_RFM_FAMILY)
    if customer_ids is not None:
        params["customer_ids"] = customer_ids
    return sql, params


async def preview(session: AsyncSession, node: Any, currency: str) -> tuple[int, list[uuid.UUID]]:
    """How many customers the rule selects now, and a few of them; nothing is saved."""
    validate(node)
    sql, params = await _matching(session, node, currency, None)
    return await repository.count_and_sample(session, sql, params)


async def create_rule_segment(
    session: AsyncSession, outbox: Outbox, *, key: str, name: str, description: str | None, rule: Any, currency: str
) -> uuid.UUID:
    validate(rule)
    full_key = f"rule:{key}"
    segment_id = segment_id_for(full_key)
    inserted = await repository.insert_rule_segment(
        session, segment_id, full_key, name, description, _json({"rule": rule, "currency": currency})
    )
    if inserted is None:
        raise SegmentExists(f"a segment with key {full_key!r} already exists")
    await repository.keep_version(session, segment_id)
    await refresh_rule_segments(session, outbox, currency, segment_ids=[segment_id])
    return segment_id


async def _editable(session: AsyncSession, segment_id: uuid.UUID) -> dict:
    """The rule segment, locked until the transaction ends so two edits number their versions one after the other."""
    row = await repository.lock_segment(session, segment_id)
    if row is None:
        raise NotFound(f"no segment {segment_id}")
    if row["kind"] != "rule":
        raise NotARuleSegment(f"segment {segment_id} is a {row['kind']} segment: runs decide its members, not a rule")
    if row["archived_at"] is not None:
        raise SegmentArchived(f"segment {segment_id} was archived at {row['archived_at'].isoformat()}")
    return row


async def edit_rule_segment(
    session: AsyncSession, outbox: Outbox, segment_id: uuid.UUID, *, changes: dict[str, Any], default_currency: str
) -> int:
    """A new version of the segment (name, description, rule or currency changed), its members re-evaluated now:
    who no longer matches leaves and who now matches enters, both recorded with the new version."""
    current = await _editable(session, segment_id)
    definition = dict(current["definition"])
    if "rule" in changes:
        validate(changes["rule"])
        definition["rule"] = changes["rule"]
    if changes.get("currency") is not None:
        definition["currency"] = changes["currency"]
    version = await repository.new_version(
        session,
        segment_id,
        definition=_json(definition),
        name=changes.get("name") or current["name"],
        description=changes["description"] if "description" in changes else current["description"],
    )
    await repository.keep_version(session, segment_id)
    await refresh_rule_segments(session, outbox, default_currency, segment_ids=[segment_id])
    return version


async def archive_rule_segment(session: AsyncSession, outbox: Outbox, segment_id: uuid.UUID) -> None:
    """No longer evaluated nor listed; its members leave now (recorded with its last version, published like any
    exit, so `member_of` rules and subscribers see them go); its versions and history stay readable."""
    current = await _editable(session, segment_id)
    now = datetime.now(UTC)
    await repository.archive(session, segment_id, now)
    nobody = "SELECT CAST(NULL AS uuid) AS customer_id WHERE false"
    rows = (
        await session.execute(
            rule_diff(nobody, scoped=False),
            {
                **publish_params(outbox, now, None, [_segment(current)]),
                "segment_id": segment_id,
                "version": current["version"],
            },
        )
    ).all()
    if rows:
        await notify_relay(session, outbox)
    await repository.summarise(session, [segment_id])


async def refresh_rule_segments(
    session: AsyncSession,
    outbox: Outbox,
    default_currency: str,
    *,
    customer_ids: list | None = None,
    segment_ids: list | None = None,
    run_id: uuid.UUID | None = None,
) -> dict[uuid.UUID, dict[str, int]]:
    """Re-evaluate rule segments (all customers, or only `customer_ids`) and publish the membership changes."""
    rules = await repository.active_rules(session, segment_ids)
    moved: dict[uuid.UUID, dict[str, int]] = {}
    now = datetime.now(UTC)
    for rule in rules:
        node, currency = rule.definition["rule"], rule.definition.get("currency", default_currency)
        matched_sql, match_params = await _matching(session, node, currency, customer_ids)
        statement = rule_diff(matched_sql, scoped=customer_ids is not None)
        rows = (
            await session.execute(
                statement,
                {
                    **match_params,
                    **publish_params(outbox, now, run_id, [_segment(rule._mapping)]),
                    "segment_id": rule.segment_id,
                    "version": rule.version,
                },
            )
        ).all()
        moved.update(movement(rows))
    if any(sum(m.values()) for m in moved.values()):
        await notify_relay(session, outbox)
    if segment_ids is not None or customer_ids is None:
        await repository.summarise(session, [r.segment_id for r in rules])
    return moved


def _segment(row: Mapping[Any, Any]) -> Segment:
    return Segment(row["segment_id"], row["key"], row["name"], row["kind"])


def _json(value: Any) -> str:
    return json.dumps(value, default=str)
