"""Cache-aside for project reads, project list pages and current timeline states."""
