"""identity resolution, merges, profile traits, timeline, partners

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
SCHEMA = "interaction"


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
    ]


def _customer_fk(table: str, column: str = "customer_id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint([column], [f"{SCHEMA}.customer.id"], ondelete="CASCADE", name=f"fk_{table}_{column}_customer")


def upgrade() -> None:
    tz = sa.DateTime(timezone=True)
    columns: list[sa.Column] = [
        sa.Column("merged_into", UUID(as_uuid=True)),
        sa.Column("erased_at", tz),
        sa.Column("last_seen_at", tz),
        sa.Column("purchase_count", sa.Integer, server_default="0", nullable=False),
        sa.Column("last_purchase_at", tz),
        sa.Column("preferred_channel", sa.Text),
        sa.Column("last_touchpoints", JSONB, server_default=sa.text("'{}'::jsonb"), nullable=False),
        sa.Column("latest_nps", sa.Integer),
        sa.Column("latest_nps_at", tz),
        sa.Column("latest_csat", sa.Integer),
        sa.Column("latest_csat_at", tz),
        sa.Column("partners", ARRAY(sa.Text), server_default=sa.text("'{}'::text[]"), nullable=False),
    ]
    for column in columns:
        op.add_column("customer", column, schema=SCHEMA)
    op.create_index(
        "ix_customer_merged_into", "customer", ["merged_into"], schema=SCHEMA, postgresql_where=sa.text("merged_into IS NOT NULL")
    )

    # Identifiers: kind 'source' is (partner, partner's id); 'email' and 'phone' have source ''.
    op.add_column("customer_identifier", sa.Column("kind", sa.Text, server_default="source", nullable=False), schema=SCHEMA)
    op.add_column("customer_identifier", sa.Column("home_customer_id", UUID(as_uuid=True)), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.customer_identifier SET home_customer_id = customer_id")
    op.alter_column("customer_identifier", "home_customer_id", nullable=False, schema=SCHEMA)
    op.drop_constraint("pk_customer_identifier", "customer_identifier", schema=SCHEMA)
    op.create_primary_key("pk_customer_identifier", "customer_identifier", ["kind", "source", "external_id"], schema=SCHEMA)

    op.add_column("purchase", sa.Column("home_customer_id", UUID(as_uuid=True)), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.purchase SET home_customer_id = customer_id")
    op.alter_column("purchase", "home_customer_id", nullable=False, schema=SCHEMA)
    op.add_column("purchase", sa.Column("line_items", JSONB), schema=SCHEMA)

    op.create_table(
        "customer_property",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("value", JSONB),
        sa.Column("value_type", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("filled_by_merge_id", UUID(as_uuid=True)),
        *_timestamps(),
        sa.PrimaryKeyConstraint("customer_id", "kind", "key", name="pk_customer_property"),
        _customer_fk("customer_property"),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_customer_property_lookup", "customer_property", ["kind", "key", sa.text("(value #>> '{}')")], schema=SCHEMA
    )

    op.create_table(
        "purchase_adjustment",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("order_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(18, 4)),
        sa.Column("currency", sa.CHAR(3)),
        sa.Column("cancelled", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("published_at", tz),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_purchase_adjustment"),
        _customer_fk("purchase_adjustment"),
        schema=SCHEMA,
    )
    op.create_index("ix_purchase_adjustment_order", "purchase_adjustment", ["source", "order_id"], schema=SCHEMA)
    op.create_index("ix_purchase_adjustment_customer_id", "purchase_adjustment", ["customer_id"], schema=SCHEMA)
    op.create_index(
        "ix_purchase_adjustment_unpublished",
        "purchase_adjustment",
        ["source", "order_id"],
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )

    op.create_table(
        "activity",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("occurred_at", tz, nullable=False),
        sa.Column("channel", sa.Text),
        sa.Column("data", JSONB, nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_activity"),
        _customer_fk("activity"),
        schema=SCHEMA,
    )
    op.create_index("ix_activity_customer_occurred", "activity", ["customer_id", "occurred_at", "id"], schema=SCHEMA)
    op.create_index("ix_activity_source_occurred", "activity", ["source", "occurred_at"], schema=SCHEMA)

    op.create_table(
        "deal",
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("deal_id", sa.Text, nullable=False),
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("home_customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("pipeline", sa.Text, nullable=False),
        sa.Column("stage", sa.Text, nullable=False),
        sa.Column("amount", sa.Numeric(18, 4)),
        sa.Column("currency", sa.CHAR(3)),
        sa.Column("expected_close", tz),
        sa.Column("owner", sa.Text),
        sa.Column("lost_reason", sa.Text),
        sa.Column("occurred_at", tz, nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("source", "deal_id", name="pk_deal"),
        _customer_fk("deal"),
        schema=SCHEMA,
    )
    op.create_index("ix_deal_customer_id", "deal", ["customer_id"], schema=SCHEMA)

    op.create_table(
        "customer_spend",
        sa.Column("customer_id", UUID(as_uuid=True), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("purchase_count", sa.Integer, nullable=False),
        sa.Column("total_spend", sa.Numeric(18, 4), nullable=False),
        sa.Column("average_spend", sa.Numeric(18, 4), nullable=False),
        sa.Column("refunded", sa.Numeric(18, 4), nullable=False),
        sa.Column("last_purchase_at", tz),
        *_timestamps(),
        sa.PrimaryKeyConstraint("customer_id", "currency", name="pk_customer_spend"),
        _customer_fk("customer_spend"),
        schema=SCHEMA,
    )

    op.create_table(
        "customer_merge",
        sa.Column("id", UUID(as_uuid=True), nullable=False),
        sa.Column("survivor_id", UUID(as_uuid=True), nullable=False),
        sa.Column("merged_id", UUID(as_uuid=True), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("merged_at", tz, nullable=False),
        sa.Column("undone_at", tz),
        sa.Column("snapshot", JSONB, nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_customer_merge"),
        schema=SCHEMA,
    )
    op.create_index("ix_customer_merge_survivor_id", "customer_merge", ["survivor_id"], schema=SCHEMA)
    op.create_index("ix_customer_merge_merged_id", "customer_merge", ["merged_id"], schema=SCHEMA)

    op.create_table(
        "partner",
        sa.Column("id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("auto_registered", sa.Boolean, nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_partner"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ["partner", "customer_merge", "customer_spend", "deal", "activity", "purchase_adjustment", "customer_property"]:
        op.drop_table(table, schema=SCHEMA)
    op.drop_column("purchase", "line_items", schema=SCHEMA)
    op.drop_column("purchase", "home_customer_id", schema=SCHEMA)
    op.execute(f"DELETE FROM {SCHEMA}.customer_identifier WHERE kind <> 'source'")
    op.drop_constraint("pk_customer_identifier", "customer_identifier", schema=SCHEMA)
    op.create_primary_key("pk_customer_identifier", "customer_identifier", ["source", "external_id"], schema=SCHEMA)
    op.drop_column("customer_identifier", "home_customer_id", schema=SCHEMA)
    op.drop_column("customer_identifier", "kind", schema=SCHEMA)
    op.drop_index("ix_customer_merged_into", "customer", schema=SCHEMA)
    for column in [
        "partners",
        "latest_csat_at",
        "latest_csat",
        "latest_nps_at",
        "latest_nps",
        "last_touchpoints",
        "preferred_channel",
        "last_purchase_at",
        "purchase_count",
        "last_seen_at",
        "erased_at",
        "merged_into",
    ]:
        op.drop_column("customer", column, schema=SCHEMA)
