"""Where the benchmark and the PostgreSQL server run: one CPU each, fixed for the whole run.

On loopback, a round trip to a backend that sleeps on the *other* CPU costs about 80 µs on our
2-core VMs (waking a halted vCPU), one on the *same* CPU about 15 µs. Left to the scheduler,
each backend lands on either, and stays there: a LIFO pool reusing one connection then
measures one backend's luck while a FIFO pool rotating over ten averages theirs, and the
ratio between two engines swings by 20 % from run to run for no reason in their code.

:func:`pinned` puts this process on one CPU and the server's postmaster on another (so every
backend forked afterwards inherits it), as client and database are on two machines in
production; ``same=True`` puts both on one CPU (a round trip with nothing but the two
processes' own code in it, the harshest ratio for a client). The postmaster's affinity is
restored on exit. Linux only; needs the right to change the server's affinity (root, or the
server's own user): otherwise nothing is pinned and :func:`pinned` says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def postmaster_of(backend_pid: int) -> int | None:
    """The parent of a server backend (the postmaster), read from ``/proc``."""
    try:
        stat = Path(f"/proc/{backend_pid}/stat").read_text()
    except OSError:
        return None
    # The command name (2nd field) is in parentheses and may hold spaces: split after it.
    fields = stat.rsplit(")", 1)[1].split()
    return int(fields[1])  # fields: state, ppid, ...


@contextmanager
def pinned(backend_pid: int, *, same: bool = False) -> Iterator[str]:
    """Pin this process and the server of ``backend_pid`` (see the module docstring); yields a
    sentence saying what was done, for the results."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    postmaster = postmaster_of(backend_pid)
    if len(cpus) < 2 or postmaster is None:
        yield "CPUs not pinned (needs Linux and 2 CPUs)"
        return
    client_cpu, server_cpu = cpus[0], cpus[0] if same else cpus[1]
    mine = os.sched_getaffinity(0)
    try:
        theirs = os.sched_getaffinity(postmaster)
        os.sched_setaffinity(postmaster, {server_cpu})
    except OSError as exc:
        yield f"CPUs not pinned ({exc.strerror} changing the server's affinity)"
        return
    os.sched_setaffinity(0, {client_cpu})
    try:
        where = "the same CPU" if same else "two CPUs"
        yield (f"client on CPU {client_cpu}, PostgreSQL (every backend opened by the run) on CPU {server_cpu}: "
               f"{where}, fixed for the run (bench/placement.py says why)")
    finally:
        os.sched_setaffinity(0, mine)
        try:
            os.sched_setaffinity(postmaster, theirs)
        except OSError:
            pass  # the server stopped meanwhile
