"""One exception hierarchy for both programs; the CLIs map it to exit codes at the edge.

    ImageServingError                  anything the user can act on; str() is the message
    ├── UsageError                     bad arguments (agent exit 2, fleet exit 5)
    ├── ConfigError                    bad agent configuration: file, line, key (agent exit 6)
    ├── SupervisorError                talking to or through the Server Supervisor
    │   ├── NotRunningError            no supervisor answers on the socket
    │   ├── NoAnswerError              it is there but did not answer in time (status exit 4)
    │   └── ComponentError             a component failed to start or stop (exit 1)
    ├── NoLogFileError                 `imageserving logs`: the log it names has no file (yet) (agent exit 1)
    ├── RequestError                   protocol: a control request the supervisor refuses; its
    │                                  `code` is the exit code of the error reply
    ├── SchemaError                    schema: a status document that is not schema 1 (a lying or
    │                                  broken agent); also a ValueError
    ├── MissingDependencyError         the controller's environment lacks a module it needs (fleet exit 1)
    ├── InventoryError                 bad inventory: file, line (fleet exit 1)
    │   ├── InventoryVariableError     a host variable the fleet cannot use: host, variable (fleet exit 1)
    │   └── PatternError               bad or empty --limit pattern (fleet exit 1)
    ├── ClusterError                   --cluster: no scheduler there, no dask installed (fleet exit 1)
    ├── HolderError                    the connection holder (--persist) cannot be used: the command
    │   │                              goes direct
    │   └── WireError                  fleet/persist/wire: a frame between client and holder that is not one
    ├── SshConfigError                 ssh_config or a host's ssh options unusable: a bad Port or
    │                                  ProxyJump (fleet exit 1, before any host)
    ├── AnsibleConfigError             ansible.cfg unreadable or malformed, or a setting in it or in
    │                                  ANSIBLE_* unusable: file and line (fleet exit 1)
    ├── StreamLocalRefused             fleet/ssh/streamlocal: sshd would not open the channel to the
    │                                  supervisor's socket (the fleet runs the agent instead)
    ├── Refused                        fleet/deploy/plan: this host cannot take the agent as asked
    │                                  (the host's result is failed)
    ├── WheelhouseError                fleet/deploy/wheelhouse: no wheels for a platform (pip's reason)
    ├── ReportInputError               fleet/reports/model: `report merge` got no schema-1 report
    ├── HistoryError                   fleet/reports/history: the history file cannot be used
    ├── CertificateFormatError         fleet/ssh/certificates: a host certificate that does not parse
    ├── AuditLogError                  fleet/audit: the audit log cannot be written, so the change is
    │                                  not made (fleet exit 1, before any host)
    ├── Interrupted                    fleet/fanout: Ctrl-C during a run; carries the partial results
    └── HostError                      one host's failure; never ends a fleet run
        ├── UnreachableError           could not run the agent there: reason is a `Reason`
        ├── OutputTooLargeError        the host was reached, but what it wrote is past the bound
        ├── StepFailed                 fleet/deploy/install: a deploy step failed; reason names it
        └── TransferFailed             fleet/deploy/transfer: a file did not arrive, or arrived different

Functions raise these; they never return error strings. Exceptions that only carry control
within one module stay private (`_Name`) and out of this drawing. A class defined elsewhere
names its module first; tests/test_errors.py holds this drawing to the code. Stdlib only: the
status client imports it.
"""

from __future__ import annotations

import enum


class ImageServingError(Exception):
    """Base of every error the product reports to a user."""


class UsageError(ImageServingError):
    """The command line asks for something that does not exist (an unknown component id...)."""


class ConfigError(ImageServingError):
    """An agent configuration file is invalid; carries the file, line and key."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.path, self.line, self.key = path, line, key
        where = ""
        if path:
            where = path + (f":{line}" if line else "")
        if key:
            where = f"{where}: {key}" if where else key
        super().__init__(f"{where}: {message}" if where else message)


class SupervisorError(ImageServingError):
    """Something went wrong talking to the Server Supervisor."""


class NotRunningError(SupervisorError):
    """No Server Supervisor is running for this home."""


class NoAnswerError(SupervisorError):
    """The Server Supervisor did not answer in time."""


class ComponentError(SupervisorError):
    """A component failed to start or to stop; the message names it and its log file."""


class NoLogFileError(ImageServingError):
    """`imageserving logs`: the log asked for is known, but no file is there (not written yet, glob matches nothing)."""


class MissingDependencyError(ImageServingError):
    """A Python module the controller needs cannot be imported; the message gives the pip command."""

    def __init__(self, message: str, *, modules: tuple[str, ...] = ()) -> None:
        self.modules = modules
        super().__init__(message)


class InventoryError(ImageServingError):
    """An inventory file is invalid; carries the file and, when known, the line."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path, self.line = path, line
        where = (path + (f":{line}" if line else "")) if path else ""
        super().__init__(f"{where}: {message}" if where else message)


class InventoryVariableError(InventoryError):
    """A host's inventory variable has a value the fleet cannot use (`ansible_port: notaport`).

    An inventory error (exit 1, nothing contacted), not a bad option: the fix is in the inventory.
    """

    def __init__(self, host: str, variable: str, why: str) -> None:
        self.host, self.variable = host, variable
        super().__init__(f"host {host}: {variable}: {why}")


class PatternError(InventoryError):
    """A --limit pattern is malformed or matches no host."""


class ClusterError(ImageServingError):
    """The cluster of --cluster cannot be used: not reachable, or dask is not installed."""


class HolderError(ImageServingError):
    """The per-user connection holder (SPEC §9) cannot be used; never ends a command, which goes direct."""


class SshConfigError(ImageServingError):
    """An ssh_config (or a host's ssh options) the SSH layer cannot use: found before any host is
    contacted, so it is bad configuration (exit 1), not a bad option and not a host's failure."""


class AnsibleConfigError(ImageServingError):
    """An ansible.cfg that cannot be read or parsed, or a setting in it (or in ANSIBLE_*) that cannot
    be used; carries the file and line when known."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path, self.line = path, line
        where = (path + (f":{line}" if line else "")) if path else ""
        super().__init__(f"{where}: {message}" if where else message)


class HostError(ImageServingError):
    """One host failed; the fleet records it and goes on with the others."""

    def __init__(self, host: str, reason: str, detail: str = "") -> None:
        self.host, self.reason, self.detail = host, reason, detail
        super().__init__(f"{host}: {reason}" + (f": {detail}" if detail else ""))


class Reason(enum.StrEnum):
    """Why a host could not be reached or heard back from: the short code a report shows."""

    DNS = "dns"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    NO_ROUTE = "no route"
    AUTH = "auth"
    UNKNOWN_HOST_KEY = "unknown host key"
    CHANGED_HOST_KEY = "changed host key"
    CONNECTION_LOST = "connection lost"
    SSH_ERROR = "ssh error"


class UnreachableError(HostError):
    """The agent could not be run on the host (DNS, refused, timeout, auth, host key, lost...)."""

    reason: Reason

    def __init__(self, host: str, reason: Reason, detail: str = "") -> None:
        super().__init__(host, Reason(reason), detail)


class OutputTooLargeError(HostError):
    """The host was reached but a command wrote more than the bound: its agent failed, not the network."""

    def __init__(self, host: str, limit: int) -> None:
        super().__init__(host, "output too large", f"the command wrote more than {limit} bytes")
        self.limit = limit
