import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import UUID

from clv.tables import metadata


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


# One row per customer and currency, recomputed from `purchase` for the customers a batch touches; the GET
# endpoint reads it, the models read (x, t_x, T) off `purchase` directly (they need purchase days).
transaction_summary = sa.Table(
    "transaction_summary",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("currency", sa.CHAR(3), primary_key=True),
    sa.Column("purchase_count", sa.Integer, nullable=False),
    sa.Column("total_spend", sa.Numeric(18, 4), nullable=False),
    sa.Column("refunded_total", sa.Numeric(18, 4), nullable=False, server_default="0"),
    sa.Column("first_purchase_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_purchase_at", sa.DateTime(timezone=True), nullable=False),
    *_timestamps(),
)

# Per-purchase rows: refunds and cancellations name a purchase, an unmerge lists the purchases that move back,
# and the holdout split needs purchase dates.
purchase = sa.Table(
    "purchase",
    metadata,
    sa.Column("purchase_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("customer_id", UUID(as_uuid=True), nullable=False, index=True),
    # The customer the fact came in under: it belongs to live(home) (shared/contracts/identity.py).
    sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("currency", sa.CHAR(3), nullable=False),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *_timestamps(),
)

refund = sa.Table(
    "refund",
    metadata,
    sa.Column("refund_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("purchase_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("amount", sa.Numeric(18, 4), nullable=False),
    sa.Column("cancelled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
    *_timestamps(),
)

# Every merge heard of from interaction, in force or undone: the owner of each fact is derived from it, so it
# equals interaction's whatever order merges, unmerges and facts arrive in (shared/contracts/identity.py).
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

# Every customer interaction erased (ids only): a fact whose home is one is dropped, whenever it arrives
# (shared/contracts/identity.py, "Erasure"). Both of clv's interaction consumers write and read it.
erased_customer = sa.Table(
    "erased_customer",
    metadata,
    sa.Column("customer_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

# A merged-away id keeps answering as its live survivor until the merge is undone (derived from customer_merge).
customer_alias = sa.Table(
    "customer_alias",
    metadata,
    sa.Column("merged_id", UUID(as_uuid=True), primary_key=True),
    sa.Column("survivor_id", UUID(as_uuid=True), nullable=False, index=True),
    sa.Column("merge_id", UUID(as_uuid=True), nullable=False),
    *_timestamps(),
)
