"""Several file descriptors per SSH connection: a process that holds many lifts its soft limit first.

One home for a command that connects itself (commands/run.py) and for the connection holder
(persist/holder.py), which keeps connections for many commands.
"""

from __future__ import annotations


def raise_fd_limit(hosts: int = 0) -> None:
    """Lifts the soft RLIMIT_NOFILE to the hard one (parallel-ssh#311: "too many open files")."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ImportError, ValueError, OSError):
        pass
