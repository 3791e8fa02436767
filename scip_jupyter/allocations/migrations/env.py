"""Alembic environment: runs on the connection `ledger.migrate` hands over (config.attributes["connection"])."""

from alembic import context

from scip_jupyter.allocations.ledger import Base
from scip_jupyter.culling.records import Base as CullingBase

# Every table the migrations manage: the ledger's and GPU culling's (same database).
target_metadata = [Base.metadata, CullingBase.metadata]

connection = context.config.attributes.get("connection")
if connection is None:  # `alembic` from the command line: build an engine from sqlalchemy.url
    from scip_jupyter.allocations.ledger import make_engine

    engine = make_engine(context.config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
