"""The store: SQLAlchemy Core over SQLite (default) or PostgreSQL.

Functions take and return domain objects, never rows.
"""
