"""GPU culling's tables come under the migrations: `scip_gpu_culls`, `scip_gpu_notices`.

Before this revision `culling/records.py` made them on first use (`create_all`), so a
database at 0002 may hold them already, with rows. Such a table is kept as it is (its
columns are the ones created here: the models never changed) and only a missing
index is added; a database without them gets them here.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _tables() -> dict[str, tuple[list[sa.Column], list[tuple[str, list[str]]]]]:
    """Each table's columns and indexes, as `culling/records.py` declares them (and create_all made them)."""
    return {
        "scip_gpu_culls": (
            [
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("at", sa.DateTime, nullable=False),
                sa.Column("user", sa.String(255), nullable=False),
                sa.Column("server", sa.String(255), nullable=False),
                sa.Column("profile", sa.String(64), nullable=False),
                sa.Column("account", sa.String(128), nullable=False),
                sa.Column("gpu_weight", sa.Float, nullable=False),
                sa.Column("idle_seconds", sa.Float, nullable=False),
                sa.Column("gpu_hours_idle", sa.Float, nullable=False),
                sa.Column("reason", sa.Text, nullable=False),
            ],
            [("ix_scip_gpu_culls_at", ["at"]), ("ix_scip_gpu_culls_user", ["user"]),
             ("ix_scip_gpu_culls_account", ["account"])],
        ),
        "scip_gpu_notices": (
            [
                sa.Column("id", sa.Integer, primary_key=True),
                sa.Column("at", sa.DateTime, nullable=False),
                sa.Column("kind", sa.String(32), nullable=False),
                sa.Column("user", sa.String(255), nullable=False),
                sa.Column("server", sa.String(255), nullable=False),
                sa.Column("account", sa.String(128), nullable=False),
                sa.Column("deadline", sa.DateTime, nullable=True),
                sa.Column("message", sa.Text, nullable=False),
                sa.Column("cleared_at", sa.DateTime, nullable=True),
            ],
            [("ix_scip_gpu_notices_user", ["user"])],
        ),
    }


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    existing = set(inspector.get_table_names())
    for table, (columns, indexes) in _tables().items():
        have = {ix["name"] for ix in inspector.get_indexes(table)} if table in existing else set()
        if table not in existing:
            op.create_table(table, *columns)
        for name, cols in indexes:
            if name not in have:
                op.create_index(name, table, cols)


def downgrade() -> None:
    # 0002 had no such tables (records.py made them); going back drops them and their rows.
    op.drop_table("scip_gpu_notices")
    op.drop_table("scip_gpu_culls")
