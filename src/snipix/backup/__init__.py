"""Backup and restore of the whole database (or one user's data): gzip MongoDB Extended
JSON lines, one file per collection, with a manifest.

A backup is a directory: one `<collection>.jsonl.gz` per collection (`files`: canonical
Extended JSON, one document a line, sorted by `_id`) and `manifest.json` (`manifest`:
format version, database, schema version = applied migration ids, per collection the
count and the sha256 of the file and of its lines). `dump` writes one, atomically;
`restore` checks every file and the schema before it writes anything, then upserts by
`_id` with the bulk writes of `snipix.db.bulk`.

Not in a backup: `system.*` collections, what the registry of collections marks as not
backed up (`snipix.catalogue`: job leases, the migration lock document), and the
indexes: restore builds them from the catalogue (`ensure_catalogue`), like a deploy does.
"""
