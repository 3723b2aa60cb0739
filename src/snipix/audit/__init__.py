"""The audit trail: who changed what, when, in which request, to which version."""
