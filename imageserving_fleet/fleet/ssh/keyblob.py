"""Public key blobs and OpenSSH host patterns: the small pure helpers known_hosts and certificates share."""

from __future__ import annotations

import base64
import hashlib
import re


def fingerprint(blob: bytes) -> str:
    """OpenSSH's SHA256 fingerprint of a public key blob (`SHA256:...`)."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def key_type(blob: bytes) -> str:
    """The algorithm name at the start of a public key blob (`ssh-ed25519`...)."""
    size = int.from_bytes(blob[:4], "big")
    return blob[4:4 + size].decode("ascii", "replace")


def glob_regex(pattern: str) -> re.Pattern[str]:
    # OpenSSH patterns know only * and ?; fnmatch would read the [ ] of "[host]:port" as a set.
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
                      + r"\Z", re.IGNORECASE)
