"""Speech recognition: transcription jobs, the engines they run, and filler removal."""
