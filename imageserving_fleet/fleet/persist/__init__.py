"""Connections that outlive a command (SPEC §9): a per-user holder that keeps them, and its clients.

    names.py    the holder's directory and the digest its sockets are named by (stdlib only)
    place.py    where the holder lives (a 0700 directory, sockets named for the environment),
                and --persist / IMAGESERVING_PERSIST; pure but for the directory
    wire.py     length-prefixed JSON frames: the request (job, targets, settings), results streamed back
    kept.py     the holder's kept sessions: lent to one host's work at a time, closed when idle
    holder.py   the holder process: peer uid check, one runner.Fleet fan-out per request
    client.py   HolderFleet (runner.Fleet's run() through the holder, direct when it cannot be used),
                starting the holder (a double fork), `persist stop`
    starter.py  the warm start: forked by the holder before its first thread, the controller
                imported; forks one child per plain `status`/`ping`, which runs on the caller's
                terminal
    thin.py     the warm start's client: hands argv, cwd, environment and stdio to the starter

A command's own process imports thin.py and names.py first (next to nothing), then, if it runs
itself, client.py, place.py and wire.py: no SSH library unless it has to connect itself.
"""
