"""How an agent attempt runs: python callables, OpenAI-compatible endpoints, remote workers."""
