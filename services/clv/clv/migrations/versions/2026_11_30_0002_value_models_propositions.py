"""per-purchase rows, refunds, aliases; model fits, scoring, customer values; propositions and targeting facts

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
SCHEMA = "clv"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def _uuid(name: str, **kw) -> sa.Column:
    return sa.Column(name, UUID(as_uuid=True), nullable=kw.pop("nullable", False), **kw)


def upgrade() -> None:
    op.add_column(
        "transaction_summary", sa.Column("refunded_total", sa.Numeric(18, 4), server_default="0", nullable=False), schema=SCHEMA
    )
    op.create_table(
        "purchase",
        _uuid("purchase_id"),
        _uuid("customer_id"),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("purchase_id", name="pk_purchase"),
        schema=SCHEMA,
    )
    op.create_index("ix_purchase_customer_id", "purchase", ["customer_id"], schema=SCHEMA)
    op.create_table(
        "refund",
        _uuid("refund_id"),
        _uuid("purchase_id"),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("cancelled", sa.Boolean, server_default=sa.false(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("refund_id", name="pk_refund"),
        schema=SCHEMA,
    )
    op.create_index("ix_refund_purchase_id", "refund", ["purchase_id"], schema=SCHEMA)
    op.create_table(
        "customer_alias",
        _uuid("merged_id"),
        _uuid("survivor_id"),
        _uuid("merge_id"),
        *_timestamps(),
        sa.PrimaryKeyConstraint("merged_id", name="pk_customer_alias"),
        schema=SCHEMA,
    )
    op.create_index("ix_customer_alias_survivor_id", "customer_alias", ["survivor_id"], schema=SCHEMA)
    op.create_table(
        "model_fit",
        _uuid("id"),
        sa.Column("version", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("progress", sa.Float, server_default="0", nullable=False),
        sa.Column("model", sa.Text, nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("time_unit_days", sa.Float, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("holdout_days", sa.Integer, nullable=False),
        sa.Column("calibration_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customers", sa.Integer),
        sa.Column("repeat_customers", sa.Integer),
        sa.Column("transactions", JSONB),
        sa.Column("spend", JSONB),
        sa.Column("diagnostics", JSONB),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_model_fit"),
        sa.UniqueConstraint("version", name="uq_model_fit_version"),
        schema=SCHEMA,
    )
    op.create_table(
        "scoring_run",
        _uuid("id"),
        _uuid("fit_id"),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("progress", sa.Float, server_default="0", nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("settings", JSONB, nullable=False),
        sa.Column("customers", sa.Integer),
        sa.Column("events_published", sa.Integer),
        sa.Column("tier_thresholds", JSONB),
        sa.Column("error", sa.Text),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_scoring_run"),
        schema=SCHEMA,
    )
    op.create_table(
        "customer_value",
        _uuid("customer_id"),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        _uuid("scoring_run_id"),
        _uuid("fit_id"),
        sa.Column("probability_alive", sa.Float, nullable=False),
        sa.Column("expected_purchases", sa.Float, nullable=False),
        sa.Column("expected_spend", sa.Numeric(18, 4), nullable=False),
        sa.Column("historical_value", sa.Numeric(18, 4), nullable=False),
        sa.Column("current_value", sa.Numeric(18, 4), nullable=False),
        sa.Column("potential_value", sa.Numeric(18, 4), nullable=False),
        sa.Column("clv", sa.Numeric(18, 4), nullable=False),
        sa.Column("tier", sa.Text, nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("customer_id", "currency", name="pk_customer_value"),
        schema=SCHEMA,
    )
    op.create_table(
        "proposition",
        _uuid("id"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("cost", sa.Numeric(18, 4), nullable=False),
        sa.Column("expected_uplift", sa.Float, nullable=False),
        sa.Column("target_tiers", ARRAY(sa.Text), server_default="{}", nullable=False),
        sa.Column("target_segments", ARRAY(sa.Text), server_default="{}", nullable=False),
        sa.Column("target_stages", ARRAY(sa.Text), server_default="{}", nullable=False),
        sa.Column("min_clv", sa.Numeric(18, 4)),
        sa.Column("min_probability_alive", sa.Float),
        sa.Column("budget", sa.Numeric(18, 4)),
        sa.Column("budget_spent", sa.Numeric(18, 4), server_default="0", nullable=False),
        sa.Column("max_contacts", sa.Integer),
        sa.Column("contact_window_days", sa.Integer, server_default="30", nullable=False),
        sa.Column("holdout_fraction", sa.Float, server_default="0.1", nullable=False),
        sa.Column("outcome_window_days", sa.Integer, server_default="30", nullable=False),
        sa.Column("active", sa.Boolean, server_default=sa.true(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_proposition"),
        schema=SCHEMA,
    )
    op.create_table(
        "delivery",
        _uuid("id"),
        _uuid("proposition_id"),
        _uuid("customer_id"),
        sa.Column("group", sa.Text, nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("partner", sa.Text),
        sa.Column("cost", sa.Numeric(18, 4), nullable=False),
        sa.Column("expected_gain", sa.Numeric(18, 4)),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.Text),
        sa.Column("outcome_at", sa.DateTime(timezone=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_delivery"),
        schema=SCHEMA,
    )
    op.create_index("ix_delivery_proposition_id", "delivery", ["proposition_id"], schema=SCHEMA)
    op.create_index("ix_delivery_customer_id", "delivery", ["customer_id"], schema=SCHEMA)
    op.create_table(
        "segment_membership",
        _uuid("customer_id"),
        sa.Column("segment_key", sa.Text, nullable=False),
        sa.Column("segment_name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("customer_id", "segment_key", name="pk_segment_membership"),
        schema=SCHEMA,
    )
    op.create_table(
        "customer_stage",
        _uuid("customer_id"),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_stage"),
        schema=SCHEMA,
    )
    op.create_table(
        "feedback",
        _uuid("feedback_id"),
        _uuid("customer_id"),
        sa.Column("proposition_id", sa.Text),
        sa.Column("perceived_value", sa.Float),
        sa.Column("expected_value", sa.Float),
        sa.Column("nps", sa.Integer),
        sa.Column("csat", sa.Integer),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("feedback_id", name="pk_feedback"),
        schema=SCHEMA,
    )
    op.create_index("ix_feedback_customer_id", "feedback", ["customer_id"], schema=SCHEMA)


def downgrade() -> None:
    for table in [
        "feedback",
        "customer_stage",
        "segment_membership",
        "delivery",
        "proposition",
        "customer_value",
        "scoring_run",
        "model_fit",
        "customer_alias",
        "refund",
        "purchase",
    ]:
        op.drop_table(table, schema=SCHEMA)
    op.drop_column("transaction_summary", "refunded_total", schema=SCHEMA)
