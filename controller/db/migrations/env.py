"""Alembic environment: runs against the engine handed over in `config.attributes["engine"]`."""

from alembic import context
from sqlmodel import SQLModel

import controller.db.enrolment  # noqa: F401
import controller.db.models  # noqa: F401  (registers the tables on SQLModel.metadata)

engine = context.config.attributes["engine"]
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=SQLModel.metadata,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
