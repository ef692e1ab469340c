"""`--cluster`: the fan-out on the workers of a Dask distributed cluster (SPEC §8).

    address.py    what `--cluster` says (local:N, tcp://, tls://); pure
    placement.py  which hosts may run where, and how they are cut into shards; pure
    policy.py     per command: ask again on another worker, or fail "worker lost"; pure
    shard.py      the work unit, and the function a worker runs on it (the in-process fan-out)
    fanout.py     ClusterFleet: the same run() as runner.Fleet, over a dask Client

Only fanout.py imports dask, and only when a run goes through a cluster: the package itself
imports nothing of it, so a fleet command without --cluster never loads dask.
"""
