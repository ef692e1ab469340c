"""Connections that outlive a command (SPEC §9): a per-user holder that keeps them, and its clients.

    place.py    where the holder lives (a 0700 directory, a socket named for the environment),
                and --persist / IMAGESERVING_PERSIST; pure but for the directory
    wire.py     length-prefixed JSON frames: the request (job, targets, settings), results streamed back
    kept.py     the holder's kept sessions: lent to one host's work at a time, closed when idle
    holder.py   the holder process: peer uid check, one runner.Fleet fan-out per request
    client.py   HolderFleet (runner.Fleet's run() through the holder, direct when it cannot be used),
                starting the holder (a double fork), `persist stop`

The command's own process imports client.py, place.py and wire.py only: no SSH library unless
it has to connect itself.
"""
