"""Agents that ship with Baton (entry points for the `python` runtime)."""
