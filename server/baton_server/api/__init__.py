"""The gRPC edge: servicers that translate protos to domain calls, and errors to statuses."""
