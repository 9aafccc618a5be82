import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from lifecycle.tables import metadata

customer_stage = sa.Table(
    "customer_stage",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("stage", sa.Text, nullable=False),
    sa.Column("stage_entered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("order_count", sa.Integer, nullable=False, server_default="0"),
    sa.Column("total_spend", sa.Numeric(18, 4), nullable=False, server_default="0"),
    sa.Column("last_purchase_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
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
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_stage_history_customer_entered", "customer_id", "entered_at"),
)
