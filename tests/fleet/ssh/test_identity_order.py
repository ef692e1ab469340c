"""OpenSSH's identity order (sshconnect2.c pubkey_prepare), as a table: the agent's keys first, a key
that is also an IdentityFile in the agent's place, then the other files; IdentitiesOnly keeps only
the agent keys that are files. The real agent is exercised in test_auth.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from imageserving_fleet.fleet.ssh.auth import _File, identities


@dataclass(frozen=True)
class FakeKey:
    blob: bytes

    def asbytes(self) -> bytes:
        return self.blob


A, B, C, D = (FakeKey(bytes([n]) * 8) for n in range(4))


def file(path: str, key: FakeKey | None, public: FakeKey | None = None) -> _File:
    pub = (key or public)
    return _File(path, key, pub.blob if pub else None, None if key else f"{path}: encrypted")


@pytest.mark.parametrize(("files", "agent", "only", "expect"), [
    ([file("f1", A)], [], False, ["f1"]),
    ([], [A, B], False, ["agent key", "agent key"]),
    ([file("f1", A), file("f2", B)], [B, C], False, ["f2", "agent key", "f1"]),   # agent order first
    ([file("f1", A), file("f2", B)], [B, C], True, ["f2", "f1"]),                 # IdentitiesOnly: no C
    ([file("enc", None, public=D)], [D], False, ["enc (agent)"]),                # encrypted file: the agent signs
    ([file("enc", None, public=D)], [], False, []),                              # ... and without it, nothing
    ([file("missing", None)], [A], True, []),
])
def test_identity_order(files: list[_File], agent: list[FakeKey], only: bool, expect: list[str]) -> None:
    offered = identities(files, agent, only)
    assert [i.label.split(" SHA256")[0] for i in offered] == expect
