"""openstack: pool slices of targets, addressing of replicas, ports on both sides

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 20:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("expansion_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pool", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("addressing_sent", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("peer_ports", sa.JSON(), nullable=True))
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("addressing", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("ports_sent", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_column("ports_sent")
        batch_op.drop_column("addressing")
    with op.batch_alter_table("expansion_targets", schema=None) as batch_op:
        batch_op.drop_column("peer_ports")
        batch_op.drop_column("addressing_sent")
        batch_op.drop_column("pool")
