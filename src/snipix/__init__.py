"""Snipix backend: durable, fast, observable persistence for the Snipix video editor."""
