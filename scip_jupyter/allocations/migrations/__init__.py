"""Alembic migrations of the ledger database's tables (run by `ledger.migrate`, never by hand needed).

`alembic -c <ini>` is not required: `Ledger(url)` (and GPU culling's `Records(url)`,
which keeps its tables in the same database) upgrades the database to the newest
revision on first use, under a lock, so hub replicas and services starting together
migrate once. A database created before migrations existed (tables made by
`create_all`, revision 0001's schema) is stamped 0001 and upgraded; GPU culling's
tables, which `create_all` made before revision 0003, are kept with their rows.
"""
