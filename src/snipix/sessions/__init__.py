"""Editing sessions: where each user left off in each project (playhead, zoom, selection,
panel), and the user's recently opened projects."""
