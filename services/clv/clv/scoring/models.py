import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB, UUID

from clv.tables import metadata
from clv.transaction_summary.models import _timestamps

scoring_run = sa.Table(
    "scoring_run",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("fit_id", UUID(as_uuid=True), nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("progress", sa.Float, nullable=False, server_default="0"),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
    sa.Column("settings", JSONB, nullable=False),
    sa.Column("customers", sa.Integer),
    sa.Column("events_published", sa.Integer),
    sa.Column("tier_thresholds", JSONB),
    sa.Column("error", sa.Text),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    # The replica running it and until when (see shared/jobs.py): a lapsed lease means its replica died.
    sa.Column("claimed_by", sa.Text),
    sa.Column("lease_until", sa.DateTime(timezone=True)),
    *_timestamps(),
)

customer_value = sa.Table(
    "customer_value",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("scoring_run_id", UUID(as_uuid=True), nullable=False),
    sa.Column("fit_id", UUID(as_uuid=True), nullable=False),
    sa.Column("probability_alive", sa.Float, nullable=False),
    sa.Column("expected_purchases", sa.Float, nullable=False),
    sa.Column("expected_spend", sa.Numeric(18, 4), nullable=False),
    sa.Column("historical_value", sa.Numeric(18, 4), nullable=False),
    sa.Column("current_value", sa.Numeric(18, 4), nullable=False),
    sa.Column("potential_value", sa.Numeric(18, 4), nullable=False),
    # Retention upside: CLV if certainly alive − CLV (the old meaning of potential_value).
    sa.Column("retention_value", sa.Numeric(18, 4), nullable=False, server_default="0"),
    sa.Column("clv", sa.Numeric(18, 4), nullable=False),
    sa.Column("tier", sa.Text, nullable=False),
    sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
    # The version of the last customer.value_updated published for this row (the order copies follow).
    sa.Column("version", sa.BigInteger),
    *_timestamps(),
)
