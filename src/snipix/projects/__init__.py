"""Projects: metadata, versions, soft delete and retention."""
