"""Running executions: the front door, the pure transition function, the run driver,
the journal, metrics."""
