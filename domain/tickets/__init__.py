"""Deletion tickets: filing, reading, the lifecycle's transitions, deadlines, decisions."""
