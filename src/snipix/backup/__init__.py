"""Backup and restore of the whole database: a manifest, one file per collection, and a
restore that checks the schema before it writes."""
