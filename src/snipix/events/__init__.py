"""Live project events: the bus that fans them out across replicas, and the SSE stream."""
