"""Alembic migrations of the allocation ledger's tables (run by `ledger.migrate`, never by hand needed).

`alembic -c <ini>` is not required: `Ledger(url)` upgrades the database to the
newest revision on first use, under a lock, so hub replicas starting together
migrate once. A database created before migrations existed (tables made by
`create_all`, revision 0001's schema) is stamped 0001 and upgraded.
"""
