"""The wire vocabulary every layer above core shares: the base of every model a client
sends or receives and its input bounds, versions, keyset pages and request fingerprints.
No HTTP here: headers and query parameters are the edge's (`snipix.api`)."""
