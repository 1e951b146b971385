"""The workflow language: expressions, mappings, CEL conditions, validation, and the plan
a revision runs from."""
