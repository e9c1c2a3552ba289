"""relays other than the origin: pairs a member relays, paths applied per expansion

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 23:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("expansions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paths", sa.JSON(), nullable=True))
    with op.batch_alter_table("expansion_targets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("relays_sent", sa.JSON(), nullable=True))
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.add_column(sa.Column("relays", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("replicas", schema=None) as batch_op:
        batch_op.drop_column("relays")
    with op.batch_alter_table("expansion_targets", schema=None) as batch_op:
        batch_op.drop_column("relays_sent")
    with op.batch_alter_table("expansions", schema=None) as batch_op:
        batch_op.drop_column("paths")
