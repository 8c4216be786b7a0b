"""`golive chaos`: the fault campaign (bench/chaos/cli.py says what it runs).

Modules, one concept each: cluster (the processes it owns), faults (what it injects and
the log of it), clients (Socket.IO clients that reconnect), live (a creator on air),
workloads (what the clients do and record), invariants (the checks, plain functions),
campaign (what the phases share, and running them), under_faults and fanout_kill (the two
phases), phases (their list), report (the table and result.json), cli.
"""
