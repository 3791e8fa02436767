"""Holdings carry the hub that made them; GPU intervals of Slurm jobs from Slurm's accounting.

* `scip_reservations.hub`: which hub replica reserved it. A hub's stale-holding
  sweep releases only its own holdings (and those from before this column, hub ''),
  never another replica's.
* `scip_slurm_usage`: one row per Slurm job (array task) our servers submitted,
  read from `sacct`: its GPUs and interval, keyed by (cluster, job id), so reading
  sacct again updates the row and never counts a job twice.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("scip_reservations") as batch:
        batch.add_column(sa.Column("hub", sa.String(128), nullable=False, server_default=""))
    op.create_index("ix_scip_reservations_hub", "scip_reservations", ["hub", "released_at"])
    op.create_table(
        "scip_slurm_usage",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("cluster", sa.String(64), nullable=False),
        sa.Column("job_id", sa.String(64), nullable=False),
        sa.Column("user", sa.String(255), nullable=False),
        sa.Column("server", sa.String(255), nullable=False, server_default=""),
        sa.Column("slurm_user", sa.String(255), nullable=False, server_default=""),
        sa.Column("slurm_account", sa.String(128), nullable=False, server_default=""),
        sa.Column("account", sa.String(128), nullable=False, server_default=""),
        sa.Column("flavour", sa.String(64), nullable=True),
        sa.Column("gpus", sa.Integer, nullable=False, server_default="0"),
        sa.Column("gpu_weight", sa.Float, nullable=False, server_default="0"),
        sa.Column("state", sa.String(32), nullable=False, server_default=""),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("ended_at", sa.DateTime, nullable=True),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("cluster", "job_id", name="uq_scip_slurm_usage_job"),
    )
    op.create_index("ix_scip_slurm_usage_account", "scip_slurm_usage", ["account", "ended_at"])
    op.create_index("ix_scip_slurm_usage_started", "scip_slurm_usage", ["started_at"])


def downgrade() -> None:
    op.drop_table("scip_slurm_usage")
    op.drop_index("ix_scip_reservations_hub", "scip_reservations")
    with op.batch_alter_table("scip_reservations") as batch:
        batch.drop_column("hub")
