import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from clv.tables import metadata
from clv.transaction_summary.models import _timestamps

proposition = sa.Table(
    "proposition",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("description", sa.Text),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("cost", sa.Numeric(18, 4), nullable=False),
    sa.Column("expected_uplift", sa.Float, nullable=False),
    # What the uplift multiplies: clv, potential (development) or retention (retention, win-back).
    sa.Column("value_basis", sa.Text, nullable=False, server_default="clv"),
    sa.Column("target_tiers", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("target_segments", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("target_stages", ARRAY(sa.Text), nullable=False, server_default="{}"),
    sa.Column("min_clv", sa.Numeric(18, 4)),
    sa.Column("min_probability_alive", sa.Float),
    sa.Column("budget", sa.Numeric(18, 4)),
    sa.Column("budget_spent", sa.Numeric(18, 4), nullable=False, server_default="0"),
    sa.Column("max_contacts", sa.Integer),
    sa.Column("contact_window_days", sa.Integer, nullable=False, server_default="30"),
    sa.Column("holdout_fraction", sa.Float, nullable=False, server_default="0.1"),
    sa.Column("outcome_window_days", sa.Integer, nullable=False, server_default="30"),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    *_timestamps(),
)

delivery = sa.Table(
    "delivery",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("proposition_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("group", sa.Text, nullable=False),
    sa.Column("channel", sa.Text, nullable=False),
    sa.Column("partner", sa.Text),
    sa.Column("cost", sa.Numeric(18, 4), nullable=False),
    sa.Column("expected_gain", sa.Numeric(18, 4)),
    sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("outcome", sa.Text),
    sa.Column("outcome_at", sa.DateTime(timezone=True)),
    sa.Column("corrections", sa.Integer, nullable=False, server_default="0"),
    *_timestamps(),
)

# The audit of outcome corrections: an outcome is write-once, and changing it says who and why.
outcome_correction = sa.Table(
    "outcome_correction",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("delivery_id", UUID(as_uuid=True), nullable=False),
    sa.Column("from_outcome", sa.Text, nullable=False),
    sa.Column("to_outcome", sa.Text, nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("corrected_by", sa.Text, nullable=False),
    sa.Column("corrected_at", sa.DateTime(timezone=True), nullable=False),
    *_timestamps(),
    sa.Index("ix_outcome_correction_delivery", "delivery_id", "corrected_at", "id"),
)

# What other services tell us about a customer, for targeting and the value-gap report.
segment_membership = sa.Table(
    "segment_membership",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("segment_key", sa.Text, primary_key=True),
    sa.Column("segment_name", sa.Text, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    # False once left: kept with the exit's version, so a late entry segmentation made before it changes nothing.
    sa.Column("member", sa.Boolean, nullable=False),
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.BigInteger),
    *_timestamps(),
)

customer_stage = sa.Table(
    "customer_stage",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("stage", sa.Text),  # null: lifecycle cleared it (stage.cleared), kept for its version
    sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("version", sa.BigInteger),  # lifecycle's order (shared/contracts/ordering.py)
    *_timestamps(),
)

feedback = sa.Table(
    "feedback",
    metadata,
    sa.Column("feedback_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    # The customer the fact came in under: it belongs to live(home) (shared/contracts/identity.py).
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("proposition_id", sa.Text),
    sa.Column("perceived_value", sa.Float),
    sa.Column("expected_value", sa.Float),
    sa.Column("nps", sa.Integer),
    sa.Column("csat", sa.Integer),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *_timestamps(),
)
