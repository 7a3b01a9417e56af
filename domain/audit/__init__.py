"""The hash-chained audit record: appending events, verifying the chain, signed checkpoints."""
