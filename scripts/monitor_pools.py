import asyncio

from connection_pools.service import connection_pool_service


async def monitor_pools():
    while True:
        stats = await connection_pool_service.get_pool_stats()
        # Alert on issues
        for rec in stats["recommendations"]:
            if rec["severity"] == "high":
                print(f"ALERT: {rec['pool']} - {rec['issue']}")
        # Log metrics
        for name, pool in stats["database_pools"].items():
            print(f"{name}: {pool['active_connections']}/{pool['pool_size']}")
        await asyncio.sleep(60)  # Check every minute


asyncio.run(monitor_pools())
