"""portfolio analysis: purchase/refund/touchpoint rows, customer aggregates, schemes, segments, runs, memberships

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

import uuid

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None
SCHEMA = "segmentation"

# The default RFM scheme (clv-references.md): covers all 25 R×F cells exactly once.
DEFAULT_SCHEME = [
    ("champions", "Champions", [5, 5], [4, 5]),
    ("loyal-customers", "Loyal Customers", [3, 4], [4, 5]),
    ("potential-loyalists", "Potential Loyalists", [4, 5], [2, 3]),
    ("new-customers", "New Customers", [5, 5], [1, 1]),
    ("promising", "Promising", [4, 4], [1, 1]),
    ("need-attention", "Need Attention", [3, 3], [3, 3]),
    ("about-to-sleep", "About to Sleep", [3, 3], [1, 2]),
    ("at-risk", "At Risk", [1, 2], [3, 4]),
    ("cant-lose-them", "Can't Lose Them", [1, 2], [5, 5]),
    ("hibernating", "Hibernating", [1, 2], [1, 2]),
]
DEFAULT_SCHEME_ID = uuid.UUID("5e6d0000-0000-4000-8000-000000000001")


def timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "purchase",
        sa.Column("purchase_id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("purchase_id", name="pk_purchase"),
        schema=SCHEMA,
    )
    op.create_index("ix_purchase_customer_id", "purchase", ["customer_id"], schema=SCHEMA)
    op.create_table(
        "purchase_refund",
        sa.Column("refund_id", UUID(as_uuid=True), nullable=False),
        sa.Column("purchase_id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("refund_id", name="pk_purchase_refund"),
        schema=SCHEMA,
    )
    op.create_index("ix_purchase_refund_purchase_id", "purchase_refund", ["purchase_id"], schema=SCHEMA)
    op.create_index("ix_purchase_refund_customer_id", "purchase_refund", ["customer_id"], schema=SCHEMA)
    op.create_table(
        "touchpoint",
        sa.Column("touchpoint_id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("touchpoint_id", name="pk_touchpoint"),
        schema=SCHEMA,
    )
    op.create_index("ix_touchpoint_customer_id", "touchpoint", ["customer_id"], schema=SCHEMA)
    op.create_table(
        "customer_aggregate",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("order_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_purchase_at", sa.DateTime(timezone=True)),
        sa.Column("last_purchase_at", sa.DateTime(timezone=True)),
        sa.Column("touchpoint_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("first_touch_at", sa.DateTime(timezone=True)),
        sa.Column("last_touch_at", sa.DateTime(timezone=True)),
        sa.Column("attributes", JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("clv", sa.Numeric(18, 4)),
        sa.Column("clv_currency", sa.CHAR(3)),
        sa.Column("value_tier", sa.Text),
        sa.Column("p_alive", sa.Float),
        sa.Column("value_as_of", sa.DateTime(timezone=True)),
        sa.Column("stage", sa.Text),
        sa.Column("stage_changed_at", sa.DateTime(timezone=True)),
        *timestamps(),
        sa.PrimaryKeyConstraint("customer_id", name="pk_customer_aggregate"),
        schema=SCHEMA,
    )
    op.create_table(
        "customer_alias",
        sa.Column("merged_id", UUID(as_uuid=True), nullable=False),
        sa.Column("survivor_id", UUID(as_uuid=True), nullable=False),
        sa.Column("merge_id", UUID(as_uuid=True), nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("merged_id", name="pk_customer_alias"),
        schema=SCHEMA,
    )
    op.create_index("ix_customer_alias_survivor_id", "customer_alias", ["survivor_id"], schema=SCHEMA)
    scheme = op.create_table(
        "rfm_scheme",
        sa.Column("scheme_id", UUID(as_uuid=True), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("builtin", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("segments", JSONB, nullable=False),
        *timestamps(),
        sa.PrimaryKeyConstraint("scheme_id", name="pk_rfm_scheme"),
        sa.UniqueConstraint("key", name="uq_rfm_scheme_key"),
        schema=SCHEMA,
    )
    op.bulk_insert(
        scheme,
        [
            {
                "scheme_id": DEFAULT_SCHEME_ID,
                "key": "default",
                "name": "Default RFM scheme",
                "builtin": True,
                "description": "Ten named segments over recency × frequency (clv-references.md).",
                "segments": [{"key": k, "name": n, "r": r, "f": f} for k, n, r, f in DEFAULT_SCHEME],
            }
        ],
    )
    op.create_table(
        "segment",
        sa.Column("segment_id", UUID(as_uuid=True), nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("family", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("definition", JSONB),
        sa.Column("summary", JSONB),
        sa.Column("last_run_id", UUID(as_uuid=True)),
        *timestamps(),
        sa.PrimaryKeyConstraint("segment_id", name="pk_segment"),
        sa.UniqueConstraint("key", name="uq_segment_key"),
        schema=SCHEMA,
    )
    op.create_index("ix_segment_family", "segment", ["family"], schema=SCHEMA)
    op.create_table(
        "segmentation_run",
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("family", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("progress", sa.Float, nullable=False, server_default="0"),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("result", JSONB),
        sa.Column("error", sa.Text),
        sa.Column("trigger", sa.Text, nullable=False, server_default="api"),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        *timestamps(),
        sa.PrimaryKeyConstraint("run_id", name="pk_segmentation_run"),
        schema=SCHEMA,
    )
    op.create_index("ix_segmentation_run_family_created", "segmentation_run", ["family", "created_at"], schema=SCHEMA)
    # Results versioned by run: one row per customer and segment the run assigned (scores for RFM runs).
    op.create_table(
        "run_result",
        sa.Column("run_id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("segment_id", UUID(as_uuid=True), nullable=False),
        sa.Column("r", sa.SmallInteger),
        sa.Column("f", sa.SmallInteger),
        sa.Column("m", sa.SmallInteger),
        sa.Column("monetary", sa.Float),
        sa.PrimaryKeyConstraint("run_id", "customer_id", "segment_id", name="pk_run_result"),
        schema=SCHEMA,
    )
    op.create_table(
        "segment_membership",
        sa.Column("membership_id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("segment_id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("left_at", sa.DateTime(timezone=True)),
        sa.Column("entered_run_id", UUID(as_uuid=True)),
        sa.Column("left_run_id", UUID(as_uuid=True)),
        *timestamps(),
        sa.PrimaryKeyConstraint("membership_id", name="pk_segment_membership"),
        schema=SCHEMA,
    )
    op.create_index(
        "ux_segment_membership_open",
        "segment_membership",
        ["segment_id", "customer_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("left_at IS NULL"),
    )
    op.create_index("ix_segment_membership_customer_id", "segment_membership", ["customer_id", "entered_at"], schema=SCHEMA)


def downgrade() -> None:
    for table in [
        "segment_membership",
        "run_result",
        "segmentation_run",
        "segment",
        "rfm_scheme",
        "customer_alias",
        "customer_aggregate",
        "touchpoint",
        "purchase_refund",
        "purchase",
    ]:
        op.drop_table(table, schema=SCHEMA)
