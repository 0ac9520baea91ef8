"""Pool sources: the statistics contract (:mod:`.base`) and one module per kind of pool.

``CONNECTION_POOLS["SOURCES"]`` lists each kind's module (its ``discover()`` and ``KIND``, the
kind's descriptor: :mod:`.kinds`); the :data:`~.base.registry` of this process holds the sources
they yield.
"""
