"""The outbox and inbox tables, created in each service's own schema by that service's migrations."""

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class MessagingTables:
    outbox: sa.Table
    inbox: sa.Table
    outbox_template: sa.Table


def messaging_tables(metadata: sa.MetaData) -> MessagingTables:
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text),
        # The serialized CloudEvent: the relay sends these bytes as they are. Or, for events published by the
        # million (a segmentation run's membership changes), NULL and `template_id` instead: the event is that
        # template with this row's event_id, key (and id) in its holes (`Outbox.add_template`).
        sa.Column("payload", sa.LargeBinary),
        sa.Column("headers", JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("template_id", sa.BigInteger),
        # The relay scans only what is unsent.
        sa.Index("ix_outbox_unsent", "id", postgresql_where=sa.text("sent_at IS NULL")),
        sa.Index("ix_outbox_sent_at", "sent_at", postgresql_where=sa.text("sent_at IS NOT NULL")),
        sa.CheckConstraint("(payload IS NULL) <> (template_id IS NULL)", name="payload_or_template"),
    )
    # An event's bytes around the holes its rows fill: `holes[i]` ("event_id", "key" or "id") goes between `parts[i]`
    # and `parts[i + 1]`. Written once per template with all its rows; deleted after them.
    outbox_template = sa.Table(
        "outbox_template",
        metadata,
        sa.Column("template_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("parts", sa.ARRAY(sa.LargeBinary), nullable=False),
        sa.Column("holes", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    inbox = sa.Table(
        "inbox",
        metadata,
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    return MessagingTables(outbox, inbox, outbox_template)


def notify_channel(schema: str) -> str:
    return f"{schema}_outbox"


def create_messaging_tables_v1(op, schema: str) -> None:  # alembic.op
    """Migration step shared by every service's first revision; frozen: later changes get a `_v2`."""
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text),
        sa.Column("payload", sa.LargeBinary, nullable=False),
        sa.Column("headers", JSONB),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        schema=schema,
    )
    op.create_index("ix_outbox_unsent", "outbox", ["id"], schema=schema, postgresql_where=sa.text("sent_at IS NULL"))
    op.create_index("ix_outbox_sent_at", "outbox", ["sent_at"], schema=schema, postgresql_where=sa.text("sent_at IS NOT NULL"))
    op.create_table(
        "inbox",
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("processed_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "source", "event_id", name="pk_inbox"),
        schema=schema,
    )


def add_outbox_templates_v2(op, schema: str) -> None:  # alembic.op
    """Migration step: outbox rows may name a template instead of carrying their payload (every service's
    relay reads the column, so every service takes this step); frozen like `_v1`."""
    op.create_table(
        "outbox_template",
        sa.Column("template_id", sa.BigInteger, sa.Identity(), nullable=False),
        sa.Column("parts", sa.ARRAY(sa.LargeBinary), nullable=False),
        sa.Column("holes", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("template_id", name="pk_outbox_template"),
        schema=schema,
    )
    op.add_column("outbox", sa.Column("template_id", sa.BigInteger), schema=schema)
    op.alter_column("outbox", "payload", nullable=True, schema=schema)
    op.create_check_constraint(
        op.f("ck_outbox_payload_or_template"), "outbox", "(payload IS NULL) <> (template_id IS NULL)", schema=schema
    )


def drop_outbox_templates_v2(op, schema: str) -> None:  # alembic.op
    op.execute(sa.text(f"DELETE FROM {schema}.outbox WHERE template_id IS NOT NULL"))
    op.drop_constraint(op.f("ck_outbox_payload_or_template"), "outbox", schema=schema)
    op.alter_column("outbox", "payload", nullable=False, schema=schema)
    op.drop_column("outbox", "template_id", schema=schema)
    op.drop_table("outbox_template", schema=schema)


def rename_inbox_consumer(op, schema: str, old: str, new: str) -> None:  # alembic.op
    """Migration step for a renamed consumer: its inbox rows (what it has applied) move to the new name.

    A row the new name already holds is dropped rather than moved (the primary key allows one).
    """
    op.execute(
        sa.text(
            f"UPDATE {schema}.inbox o SET consumer = :new WHERE consumer = :old AND NOT EXISTS "
            f"(SELECT 1 FROM {schema}.inbox n WHERE n.consumer = :new AND n.source = o.source AND n.event_id = o.event_id)"
        ).bindparams(old=old, new=new)
    )
    op.execute(sa.text(f"DELETE FROM {schema}.inbox WHERE consumer = :old").bindparams(old=old))


def drop_messaging_tables_v1(op, schema: str) -> None:  # alembic.op
    op.drop_table("inbox", schema=schema)
    op.drop_table("outbox", schema=schema)
