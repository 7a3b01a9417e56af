"""Jobs: claimed under a lease, heartbeated, retried or failed; what workers run."""
