"""Several server processes (replicas) on one database, each running executions."""
