"""Several server processes on one database: the engine lease."""
