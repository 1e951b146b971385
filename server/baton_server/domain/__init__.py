"""Pure data and rules: definitions, executions, events, failures, retry policies.
Imports nothing else of Baton."""
