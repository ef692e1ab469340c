"""`imageserving-fleet deploy`: install or upgrade the agent on every host, with no package index there.

    wheelhouse.py   controller: this project's wheel and, per host platform, its dependencies' wheels
    facts.py        the probe run on each host, and what it reported (python, platform, current agent)
    plan.py         pure: from a host's facts and the wheels, what to do there (or why not)
    install.py      the remote steps as shell-quoted commands, and their execution over a session
    transfer.py     sending files: SFTP, else piped on a command's stdin with a sha256 check on the host
    run.py          the phases: probe every host, collect wheels per platform, install per host

The order, and why: the project's wheel is built before any host is contacted (a broken tree is
exit 1, not a per-host failure); hosts are probed over the run's SSH connections; wheels are
collected once per distinct (python, platform) among them; then each host gets what it is
missing (by SFTP, else piped), a new virtual environment, and a symlink switched only once the new agent runs.
"""
