import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from clv.tables import metadata

# One row per customer and currency; the models read (x, t_x, T) off first/last purchase and the count.
transaction_summary = sa.Table(
    "transaction_summary",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("purchase_count", sa.Integer, nullable=False),
    sa.Column("total_spend", sa.Numeric(18, 4), nullable=False),
    sa.Column("first_purchase_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)
