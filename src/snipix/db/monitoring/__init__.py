"""Database monitoring through PyMongo's monitoring API: pool, commands, topology.

PyMongo keeps its counters private; its events are the supported way to see them. Three
listeners, all registered on the one client of the app (see `app.py`), each in its module:

- `pool.PoolStats` (CMAP events): pool size, checked-out connections, waiters, wait time,
  clears and failed check-outs, for `/health/ready` and the `snipix_db_pool_*` series.
- `commands.CommandMonitor` (command events): times every command into a histogram by
  command and collection, counts failures, and logs a `slow query` line at or above
  SLOW_QUERY_MS with the query's *shape* (`query_shape`: field names and operators, every
  value replaced by its BSON type), so no document content ever reaches a log.
- `topology.TopologyMonitor` (SDAM events): logs primary changes and failing heartbeats,
  and keeps `snipix_db_up` for the "database down" alert.

Their series are declared in `metrics.DatabaseMetrics`, built once from the app's registry
and handed to all three.

Callbacks run on the driver's hot path (in the task that sent the command), so they count
and return; the only per-command work beyond counting is a dict insert and pop. The shape is
computed only for a command that turned out to be slow.
"""

from __future__ import annotations

from pymongo.monitoring import (
    CommandListener,
    ConnectionPoolListener,
    ServerHeartbeatListener,
    ServerListener,
    TopologyListener,
)

# Anything `AsyncMongoClient(event_listeners=...)` accepts, named with PyMongo's public
# listener classes (its own annotation is a private base class).
Listener = (
    CommandListener
    | ConnectionPoolListener
    | ServerListener
    | ServerHeartbeatListener
    | TopologyListener
)
