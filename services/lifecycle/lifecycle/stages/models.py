import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from lifecycle.tables import metadata


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


# The current stage: always the last transition `derive_stage` gives on the customer's facts.
customer_stage = sa.Table(
    "customer_stage",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("order_count", sa.Integer, nullable=False, server_default="0"),
    # Null when the customer bought in several currencies: then only spend_by_currency ({currency: net spend}).
    sa.Column("total_spend", sa.Numeric(18, 4), server_default="0"),
    sa.Column("spend_by_currency", JSONB, nullable=False, server_default="{}"),
    sa.Column("last_purchase_at", sa.DateTime(timezone=True)),
    sa.Column("rule_set_version", sa.Integer),
    # The version of the last stage.changed published for this customer (the owner's order copies follow).
    sa.Column("version", sa.BigInteger),
    # The rules' state after the last fact (DerivationState as JSON, plus whether the stage came from the clock):
    # a fact that extends the history is applied to it instead of replaying all facts. Null: replay.
    sa.Column("derivation", JSONB),
    *_timestamps(),
    sa.Index("ix_customer_stage_stage_last_purchase", "stage", "last_purchase_at"),
)

stage_history = sa.Table(
    "stage_history",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("left_at", sa.DateTime(timezone=True)),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("trigger_event_id", sa.Text),
    sa.Column("from_stage", sa.Text),
    sa.Column("rule", sa.Text),
    sa.Column("actor", sa.Text),
    sa.Column("trigger_source", sa.Text),
    sa.Column("rule_set_version", sa.Integer),
    *_timestamps(),
    sa.Index("ix_stage_history_customer_entered", "customer_id", "entered_at"),
    sa.Index("ix_stage_history_stage_entered", "stage", "entered_at"),
    sa.Index("ix_stage_history_entered", "entered_at"),
)

# The facts the rules read, one row per (event, kind): replaying them gives the stage.
customer_fact = sa.Table(
    "customer_fact",
    metadata,
    sa.Column("source", sa.Text, primary_key=True),
    sa.Column("event_id", sa.Text, primary_key=True),
    sa.Column("kind", sa.Text, primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("data", JSONB, nullable=False, server_default="{}"),
    # The customer the fact came in under: it belongs to live(home) (shared/contracts/identity.py).
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
    *_timestamps(),
    sa.Index("ix_customer_fact_customer", "customer_id", "occurred_at"),
    sa.Index("ix_customer_fact_home", "home_customer_id"),
)

# Every merge heard of from interaction, in force or undone; `merged_customer` (merged-away id → live survivor)
# is derived from it for the ids a merge or unmerge concerns (shared/contracts/identity.py).
customer_merge = sa.Table(
    "customer_merge",
    metadata,
    sa.Column("merge_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("survivor_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("merged_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("version", sa.BigInteger),  # interaction's identity version (null: published before it had one)
    sa.Column("undone", sa.Boolean, nullable=False),
    *_timestamps(),
)

# One row per customer for the funnel: when its lifecycle began and when it first entered each stage itself
# (null: never; a stage it jumped over is not entered). Kept from stage_history by `refresh_funnel_entries`, so the
# funnel reads only the customers whose lifecycle began in the period instead of windowing over every transition.
funnel_entry = sa.Table(
    "funnel_entry",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("first_entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("cohort_month", sa.DateTime(timezone=True), nullable=False),  # month of first entry, UTC
    sa.Column("entered_approach_at", sa.DateTime(timezone=True)),
    sa.Column("entered_acquisition_at", sa.DateTime(timezone=True)),
    sa.Column("entered_development_at", sa.DateTime(timezone=True)),
    sa.Column("entered_retention_at", sa.DateTime(timezone=True)),
    sa.Column("entered_loyalty_at", sa.DateTime(timezone=True)),
    *_timestamps(),
    sa.Index("ix_funnel_entry_first_entered", "first_entered_at"),
)
