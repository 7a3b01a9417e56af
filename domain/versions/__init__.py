"""The model registry: versions with their lineage, the served alias, publish and rollback."""
