"""event traceparent

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 01:40:00

- ``events.traceparent``: the W3C trace context of the ingest request that stored the event, written
  only while traces are on (``OTEL_EXPORTER_OTLP_ENDPOINT``); each attempt's span is its child. NULL
  for existing rows and whenever traces are off.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('traceparent', sa.String(length=55), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_column('traceparent')
