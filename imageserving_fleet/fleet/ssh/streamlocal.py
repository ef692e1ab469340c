"""Open a `direct-streamlocal@openssh.com` channel: a Unix socket on the host, reached through sshd.

paramiko has no API for this channel (paramiko#544, open since 2015). OpenSSH's PROTOCOL §2.4
defines its channel-open payload: string socket path, string reserved (""), uint32 reserved (0).
`open_streamlocal` builds that message the way `Transport.open_channel` builds its own and waits
the same way for the server's confirmation or failure. It touches paramiko internals
(`_next_channel`, `_channels`, `channel_events`...), so pyproject pins the paramiko versions it
is tested on (tests/fleet/test_streamlocal.py runs it against a real sshd).

OpenSSH 9.2 answers every refusal the same way (SSH2_OPEN_CONNECT_FAILED, "Connect failed"):
forwarding switched off (`AllowStreamLocalForwarding no`, `DisableForwarding yes`) and a socket
it could not connect to (missing, stale, another user's) look alike, so the caller must not read
"not running" into a refusal.
"""

from __future__ import annotations

import threading
from typing import Any

from ...errors import ImageServingError

KIND = "direct-streamlocal@openssh.com"


class StreamLocalRefused(ImageServingError):
    """The server would not open the channel (forwarding off, or its connect() to the socket failed)."""

    def __init__(self, path: str, code: int, text: str) -> None:
        super().__init__(f"{KIND} to {path} refused: {text} (code {code})")
        self.path, self.code, self.text = path, code, text


def payload(path: str) -> tuple[str, str, int]:
    """The channel-type-specific fields, in order: socket path, reserved string, reserved uint32."""
    return (path, "", 0)


def open_streamlocal(transport: Any, path: str, *, timeout: float) -> Any:
    """Takes an authenticated paramiko Transport and an absolute socket path; returns a Channel.

    Raises StreamLocalRefused when the server refuses, TimeoutError when it does not answer within
    `timeout` seconds, and paramiko's SSHException/EOFError when the connection itself is gone.
    """
    import paramiko
    from paramiko.common import cMSG_CHANNEL_OPEN

    if not transport.is_active():
        raise paramiko.SSHException("SSH session not active")
    with transport.lock:
        window = transport._sanitize_window_size(None)
        packet = transport._sanitize_packet_size(None)
        chanid = transport._next_channel()
        m = paramiko.Message()
        m.add_byte(cMSG_CHANNEL_OPEN)
        m.add_string(KIND)
        m.add_int(chanid)
        m.add_int(window)
        m.add_int(packet)
        socket_path, reserved, reserved_int = payload(path)
        m.add_string(socket_path)
        m.add_string(reserved)
        m.add_int(reserved_int)
        chan: Any = paramiko.Channel(chanid)
        transport._channels.put(chanid, chan)
        event = transport.channel_events[chanid] = threading.Event()
        transport.channels_seen[chanid] = True
        chan._set_transport(transport)
        chan._set_window(window, packet)
    transport._send_user_message(m)
    # The reader thread sets the event on success, on failure and when the transport ends, so one
    # wait (not paramiko's 0.1 s polling loop) is enough.
    if not event.wait(timeout):
        with transport.lock:
            transport.channel_events.pop(chanid, None)
            transport._channels.delete(chanid)
        raise TimeoutError(f"no answer to the {KIND} channel open within {timeout:g}s")
    opened = transport._channels.get(chanid)
    if opened is not None and transport.is_active():
        return opened
    exc = transport.get_exception()
    if isinstance(exc, paramiko.ChannelException):
        raise StreamLocalRefused(path, exc.code, exc.text)
    raise exc or paramiko.SSHException("SSH session ended while opening the channel")
