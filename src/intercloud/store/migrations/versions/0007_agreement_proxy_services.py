"""agreements.proxy_services: the service types the tenant API proxy may reach in the peer

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04 20:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "proxy_services",
                sa.JSON(),
                nullable=False,
                server_default='["compute", "network"]',
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_column("proxy_services")
