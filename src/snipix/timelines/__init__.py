"""Timelines: the editor's durable state, patch autosave, history, undo/redo, OTIO."""
