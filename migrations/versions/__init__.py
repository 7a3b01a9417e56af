"""Alembic revisions, date-prefixed; a package so that installs ship them."""
