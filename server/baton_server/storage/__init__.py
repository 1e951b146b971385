"""Persistence: SQLite through aiosqlite, and the optional Redis cache; knows nothing of protos."""
