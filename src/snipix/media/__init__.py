"""Media files: uploads streamed to local storage, served with HTTP Range, trimmed with ffmpeg.

The bytes live under the media root (`Settings.media_root`); MongoDB holds only their
metadata, in the project's `media`, changed through the projects service like any edit.
"""
