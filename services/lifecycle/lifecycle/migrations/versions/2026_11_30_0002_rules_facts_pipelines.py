"""rule sets and their replay runs, customer facts, funnel entries, richer stage history, pipelines and deals

Deals come with seeded pipelines: marketing, sales, service.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
SCHEMA = "lifecycle"

DEFAULT_RULES = {
    "repeat_window_days": 365,
    "loyalty_window_days": 365,
    "loyalty_min_purchases": 3,
    "promoter_min_nps": 9,
    "top_tiers": ["platinum", "gold"],
    "loyalty_min_probability_alive": 0.7,
    "inactivity_days": 365,
    "churn_probability_alive_below": 0.2,
}

# key, name, lost reasons, [(stage key, name, win probability, outcome)]
PIPELINES = [
    (
        "marketing",
        "Marketing",
        ["unresponsive", "not a fit", "unsubscribed"],
        [
            ("subscriber", "Subscriber", "0.05", "open"),
            ("mql", "Marketing-qualified lead", "0.10", "open"),
            ("sql", "Sales-qualified lead", "0.25", "open"),
            ("won", "Handed to sales", "1", "won"),
            ("lost", "Lost", "0", "lost"),
        ],
    ),
    (
        "sales",
        "Sales",
        ["price", "competitor", "no budget", "no decision", "timing"],
        [
            ("lead", "Lead", "0.10", "open"),
            ("qualified", "Qualified", "0.20", "open"),
            ("proposal", "Proposal", "0.50", "open"),
            ("negotiation", "Negotiation", "0.75", "open"),
            ("won", "Won", "1", "won"),
            ("lost", "Lost", "0", "lost"),
        ],
    ),
    (
        "service",
        "Service",
        ["no need", "price", "churned"],
        [
            ("identified", "Opportunity identified", "0.20", "open"),
            ("proposed", "Offer proposed", "0.50", "open"),
            ("committed", "Committed", "0.80", "open"),
            ("won", "Renewed / upsold", "1", "won"),
            ("lost", "Lost", "0", "lost"),
        ],
    ),
]


def pipeline_id(key: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"urn:crm:lifecycle:pipeline:{key}")


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.add_column("customer_stage", sa.Column("rule_set_version", sa.Integer), schema=SCHEMA)
    op.create_index("ix_customer_stage_stage_last_purchase", "customer_stage", ["stage", "last_purchase_at"], schema=SCHEMA)
    for name in ("from_stage", "rule", "actor", "trigger_source"):
        op.add_column("stage_history", sa.Column(name, sa.Text), schema=SCHEMA)
    op.add_column("stage_history", sa.Column("rule_set_version", sa.Integer), schema=SCHEMA)
    # Funnels, distributions and time-in-stage scan by stage and entry time; the covering columns keep
    # those scans index-only on millions of transitions.
    op.create_index(
        "ix_stage_history_stage_entered",
        "stage_history",
        ["stage", "entered_at"],
        schema=SCHEMA,
        postgresql_include=["customer_id", "left_at"],
    )
    op.create_index(
        "ix_stage_history_entered",
        "stage_history",
        ["entered_at"],
        schema=SCHEMA,
        postgresql_include=["customer_id", "stage", "left_at"],
    )

    op.create_table(
        "customer_fact",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", JSONB, server_default="{}", nullable=False),
        sa.Column("merge_id", UUID(as_uuid=True)),
        sa.Column("original_customer_id", UUID(as_uuid=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("source", "event_id", "kind", name="pk_customer_fact"),
        schema=SCHEMA,
    )
    op.create_index("ix_customer_fact_customer", "customer_fact", ["customer_id", "occurred_at"], schema=SCHEMA)
    op.create_index(
        "ix_customer_fact_merge", "customer_fact", ["merge_id"], schema=SCHEMA, postgresql_where=sa.text("merge_id IS NOT NULL")
    )

    op.create_table(
        "funnel_entry",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("first_entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cohort_month", sa.DateTime(timezone=True), nullable=False),
        *[
            sa.Column(f"reached_{s}_at", sa.DateTime(timezone=True))
            for s in ("approach", "acquisition", "development", "retention", "loyalty")
        ],
        *_timestamps(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_funnel_entry"),
        schema=SCHEMA,
    )
    op.create_index("ix_funnel_entry_first_entered", "funnel_entry", ["first_entered_at"], schema=SCHEMA)

    rule_set = op.create_table(
        "rule_set",
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("parameters", JSONB, nullable=False),
        sa.Column("description", sa.Text, server_default="", nullable=False),
        sa.Column("created_by", sa.Text),
        sa.Column("activated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("version", name="pk_rule_set"),
        schema=SCHEMA,
    )
    op.bulk_insert(rule_set, [{"version": 1, "parameters": DEFAULT_RULES, "description": "defaults", "created_by": "migration"}])
    op.create_table(
        "replay_run",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("rule_set_version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("customers_total", sa.Integer),
        sa.Column("evaluated", sa.Integer, server_default="0", nullable=False),
        sa.Column("moves", JSONB, server_default="[]", nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_replay_run"),
        sa.ForeignKeyConstraint(
            ["rule_set_version"], [f"{SCHEMA}.rule_set.version"], name="fk_replay_run_rule_set_version_rule_set"
        ),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_replay_run_status",
        "replay_run",
        ["status"],
        schema=SCHEMA,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )

    pipeline = op.create_table(
        "pipeline",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("lost_reasons", ARRAY(sa.Text), server_default="{}", nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_pipeline"),
        sa.UniqueConstraint("key", name="uq_pipeline_key"),
        schema=SCHEMA,
    )
    stage = op.create_table(
        "pipeline_stage",
        sa.Column("pipeline_id", UUID(as_uuid=True), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("win_probability", sa.Numeric(5, 4), nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("pipeline_id", "key", name="pk_pipeline_stage"),
        sa.ForeignKeyConstraint(
            ["pipeline_id"], [f"{SCHEMA}.pipeline.id"], ondelete="CASCADE", name="fk_pipeline_stage_pipeline_id_pipeline"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "deal",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("pipeline_id", UUID(as_uuid=True), nullable=False),
        sa.Column("stage_key", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("title", sa.Text),
        sa.Column("amount", sa.Numeric(18, 4)),
        sa.Column("currency", sa.String(3)),
        sa.Column("expected_close", sa.DateTime(timezone=True)),
        sa.Column("owner", sa.Text),
        sa.Column("lost_reason", sa.Text),
        sa.Column("source", sa.Text),
        sa.Column("external_id", sa.Text),
        sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_deal"),
        sa.UniqueConstraint("source", "external_id", name="uq_deal_source_external_id"),
        sa.ForeignKeyConstraint(["pipeline_id"], [f"{SCHEMA}.pipeline.id"], name="fk_deal_pipeline_id_pipeline"),
        schema=SCHEMA,
    )
    op.create_index("ix_deal_customer", "deal", ["customer_id"], schema=SCHEMA)
    op.create_index("ix_deal_pipeline_status", "deal", ["pipeline_id", "status"], schema=SCHEMA)
    op.create_table(
        "deal_stage_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("deal_id", UUID(as_uuid=True), nullable=False),
        sa.Column("stage_key", sa.Text, nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True)),
        sa.Column("actor", sa.Text),
        sa.Column("trigger_event_id", sa.Text),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_deal_stage_history"),
        sa.ForeignKeyConstraint(
            ["deal_id"], [f"{SCHEMA}.deal.id"], ondelete="CASCADE", name="fk_deal_stage_history_deal_id_deal"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_deal_stage_history_deal", "deal_stage_history", ["deal_id", "entered_at"], schema=SCHEMA)

    op.bulk_insert(pipeline, [{"id": pipeline_id(k), "key": k, "name": n, "lost_reasons": lr} for k, n, lr, _ in PIPELINES])
    op.bulk_insert(
        stage,
        [
            {"pipeline_id": pipeline_id(k), "key": sk, "name": sn, "position": i, "win_probability": p, "outcome": o}
            for k, _, _, stages in PIPELINES
            for i, (sk, sn, p, o) in enumerate(stages)
        ],
    )


def downgrade() -> None:
    op.drop_table("deal_stage_history", schema=SCHEMA)
    op.drop_table("deal", schema=SCHEMA)
    op.drop_table("pipeline_stage", schema=SCHEMA)
    op.drop_table("pipeline", schema=SCHEMA)
    op.drop_table("replay_run", schema=SCHEMA)
    op.drop_table("rule_set", schema=SCHEMA)
    op.drop_table("funnel_entry", schema=SCHEMA)
    op.drop_table("customer_fact", schema=SCHEMA)
    op.drop_index("ix_stage_history_entered", "stage_history", schema=SCHEMA)
    op.drop_index("ix_stage_history_stage_entered", "stage_history", schema=SCHEMA)
    for name in ("from_stage", "rule", "actor", "trigger_source", "rule_set_version"):
        op.drop_column("stage_history", name, schema=SCHEMA)
    op.drop_index("ix_customer_stage_stage_last_purchase", "customer_stage", schema=SCHEMA)
    op.drop_column("customer_stage", "rule_set_version", schema=SCHEMA)
