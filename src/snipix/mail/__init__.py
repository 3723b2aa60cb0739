"""Outgoing mail: a message, the transports that deliver it (SMTP, or files in the local
profile), and the bounded outbox that sends in the background so no request waits on a
mail server."""
