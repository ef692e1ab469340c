"""SPEC §3 exit codes of `imageserving-fleet`: Ansible's, without its overloading. Their one home.

Stdlib-free on purpose: the warm command's client (persist/thin.py) reads them before importing
anything else of the controller.
"""

EXIT_OK = 0              # every host ok
EXIT_BEFORE_HOSTS = 1    # refused before any host was contacted (bad inventory, bad ssh_config, ...)
EXIT_HOST_FAILED = 2     # a host failed, degraded or was skipped
EXIT_UNREACHABLE = 4     # a host could not be reached (wins over 2)
EXIT_BAD_OPTIONS = 5     # the command line itself
EXIT_INTERRUPTED = 99    # Ctrl-C: the report printed is partial
