"""Pieces every HTTP resource shares: the wire model base, pagination and ETags."""
