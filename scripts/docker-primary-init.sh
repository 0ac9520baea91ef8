#!/bin/sh
# Runs once in the docker-compose primary: lets the replica connect for replication.
set -e
echo "host replication pools all scram-sha-256" >> "$PGDATA/pg_hba.conf"
