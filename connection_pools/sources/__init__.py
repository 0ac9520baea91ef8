"""Pool sources: the statistics contract (:mod:`.base`) and one module per kind of pool.

``CONNECTION_POOLS["SOURCES"]`` lists each kind's ``discover()`` function; the
:data:`~.base.registry` of this process holds the sources they yield.
"""
