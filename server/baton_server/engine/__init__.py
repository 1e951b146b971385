"""The domain: definitions, validation, expressions and conditions; knows nothing of gRPC."""
