"""The API on this process's live pools: :mod:`.postgres` (``get_pool``, ``resize_pool``,
``warm_pools``, ``ping``, fork and shutdown hooks), and :mod:`.requestctx` (the request a
checkout belongs to, set by the middleware)."""
