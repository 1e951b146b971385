"""Generated protobuf and gRPC stubs for package baton.v1 (regenerate with `make proto`)."""
