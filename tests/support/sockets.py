"""Which TCP connections a process holds, read from /proc: how a test tells the server's
connections of one worker from another's (``pg_stat_activity.client_port``)."""

from __future__ import annotations

import os


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    return inodes


def client_ports(pid: int, server_port: int) -> set[int]:
    """Local ports of ``pid``'s established TCP connections to ``server_port``."""
    inodes = _socket_inodes(pid)
    ports = set()
    for table in ("tcp", "tcp6"):
        try:
            with open(f"/proc/{pid}/net/{table}") as rows:
                next(rows)
                for row in rows:
                    fields = row.split()
                    local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
                    if state == "01" and inode in inodes and int(remote.rsplit(":", 1)[1], 16) == server_port:
                        ports.add(int(local.rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            continue
    return ports
