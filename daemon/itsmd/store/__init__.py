"""The store: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Functions take and return domain objects, never rows. May import `models`,
`views`, `correlation` and the pure `checks` modules; never `runtime` or above.
"""
