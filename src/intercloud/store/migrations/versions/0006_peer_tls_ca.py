"""peers.tls_ca: the PEM (CA or certificate) a peer's TLS certificate is pinned to

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 14:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("peers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tls_ca", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("peers", schema=None) as batch_op:
        batch_op.drop_column("tls_ca")
