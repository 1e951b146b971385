"""Baton's gRPC server: durable AI-agent workflows over SQLite, with Redis as cache."""

__version__ = "0.4.0"
