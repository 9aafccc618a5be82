import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from lifecycle.tables import metadata


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


pipeline = sa.Table(
    "pipeline",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("key", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("lost_reasons", ARRAY(sa.Text), nullable=False, server_default="{}"),
    *_timestamps(),
)

pipeline_stage = sa.Table(
    "pipeline_stage",
    metadata,
    sa.Column("pipeline_id", UUID(as_uuid=True), sa.ForeignKey("lifecycle.pipeline.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("key", sa.Text, primary_key=True),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("win_probability", sa.Numeric(5, 4), nullable=False),
    sa.Column("outcome", sa.Text, nullable=False),  # open | won | lost
    *_timestamps(),
)

deal = sa.Table(
    "deal",
    metadata,
    sa.Column("id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
    sa.Column("pipeline_id", UUID(as_uuid=True), sa.ForeignKey("lifecycle.pipeline.id"), nullable=False),
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
    sa.UniqueConstraint("source", "external_id"),
    sa.Index("ix_deal_customer", "customer_id"),
    sa.Index("ix_deal_pipeline_status", "pipeline_id", "status"),
)

deal_stage_history = sa.Table(
    "deal_stage_history",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("deal_id", UUID(as_uuid=True), sa.ForeignKey("lifecycle.deal.id", ondelete="CASCADE"), nullable=False),
    sa.Column("stage_key", sa.Text, nullable=False),
    sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("left_at", sa.DateTime(timezone=True)),
    sa.Column("actor", sa.Text),
    sa.Column("trigger_event_id", sa.Text),
    *_timestamps(),
    sa.Index("ix_deal_stage_history_deal", "deal_id", "entered_at"),
)
