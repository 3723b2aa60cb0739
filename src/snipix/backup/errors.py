"""The one error a backup or restore fails with (apart from the database's own)."""

from __future__ import annotations


class BackupError(Exception):
    """A backup or restore that cannot go on; the message says why in one line."""
