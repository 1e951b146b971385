"""Agents, workflows and handoffs: create, read, update, delete, with validation and revisions."""
