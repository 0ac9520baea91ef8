"""Pool adapters: one module per pool kind, all recording into :mod:`connection_pools.stats`.

* :mod:`.postgres` - the instrumented psycopg pool behind our PostgreSQL engine
  (``get_pool``, ``resize_pool``, ``warm_pools``, ``ping``);
* :mod:`.persistent` - statistics for ``CONN_MAX_AGE`` aliases without a pool;
* :mod:`.redis` - the Redis pools (issue "Redis pools");
* :mod:`.requestctx` - the request a checkout belongs to (set by the middleware).
"""
