"""The admin dashboard page (``/admin/connection-pools/``): :mod:`.views` and :mod:`.urls`
(``include("connection_pools.dashboard.urls")``)."""
