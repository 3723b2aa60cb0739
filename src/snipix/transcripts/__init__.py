"""Transcripts: word-level text of a project's media, stored in buckets, editable, searchable."""
