"""Security primitives below the HTTP edge: the rate-limit counters (`limiter`)."""
