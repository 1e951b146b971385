"""Live events: the in-process hub and the relay across processes."""
