"""The ledger as first landed: reservations, audit events, account lock rows.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scip_reservations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("server", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("flavour", sa.String(64), nullable=True),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("gpu_weight", sa.Float, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("released_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_scip_reservations_account", "scip_reservations", ["account", "released_at"])
    op.create_index("ix_scip_reservations_server", "scip_reservations", ["user", "server", "released_at"])
    op.create_table(
        "scip_allocation_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("at", sa.DateTime, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("server", sa.String(255), nullable=False),
        sa.Column("profile", sa.String(64), nullable=False),
        sa.Column("account", sa.String(128), nullable=False),
        sa.Column("flavour", sa.String(64), nullable=True),
        sa.Column("units", sa.Integer, nullable=False),
        sa.Column("reservation_id", sa.Integer, nullable=True),
        sa.Column("message", sa.Text, nullable=False),
    )
    op.create_index("ix_scip_allocation_events_at", "scip_allocation_events", ["at"])
    op.create_index("ix_scip_allocation_events_user", "scip_allocation_events", ["user"])
    op.create_table("scip_allocation_accounts", sa.Column("key", sa.String(128), primary_key=True))


def downgrade() -> None:
    op.drop_table("scip_allocation_accounts")
    op.drop_table("scip_allocation_events")
    op.drop_table("scip_reservations")
