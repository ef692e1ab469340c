"""Small real programs for the supervisor tests: `python progs.py MODE [PORT]`.

listen PORT     bind 127.0.0.1:PORT, say so, and serve until killed
crash           exit 1 at once
crash-later S   run S seconds, then exit 1
clean-exit      exit 0 at once
stubborn PORT   ignore SIGTERM; fork a grandchild that leaves the process group (setsid), ignores
                SIGTERM too and holds PORT; sleep forever
leak MB         allocate MB MiB, then sleep
share MB PORT   touch MB MiB, then fork two children that keep sharing those pages (copy-on-write,
                never written again) and sleep; the parent holds PORT (nginx's master and workers, small)
http PORT       an HTTP server on 127.0.0.1:PORT answering 200 "ok" to every GET (one request at a time)
detach PORT     a C-daemon-style detach: fork, setsid, fork again, the middle one exits, and the
                grandchild execs `listen PORT` with an EMPTY environment (no tag survives); the main
                process stays (as nginx's master does) and sleeps
count           print numbered lines, one every millisecond, forever (a component under load)
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import time


def hold(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


def serve_forever(s: socket.socket) -> None:
    while True:
        conn, _ = s.accept()
        conn.close()


def main() -> None:
    mode = sys.argv[1]
    arg = sys.argv[2] if len(sys.argv) > 2 else ""
    if mode == "listen":
        s = hold(int(arg))
        print(f"listening on {arg}", flush=True)
        serve_forever(s)
    elif mode == "crash":
        print("crashing", flush=True)
        sys.exit(1)
    elif mode == "crash-later":
        time.sleep(float(arg))
        sys.exit(1)
    elif mode == "clean-exit":
        sys.exit(0)
    elif mode == "stubborn":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:
            os.setsid()
            s = hold(int(arg))
            print(f"grandchild {os.getpid()} holds {arg}", flush=True)
            serve_forever(s)
        while True:
            time.sleep(3600)
    elif mode == "http":
        s = hold(int(arg))
        print(f"http on {arg}", flush=True)
        while True:
            conn, _ = s.accept()
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
                except OSError:
                    pass
    elif mode == "detach":
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execve(sys.executable, [sys.executable, __file__, "listen", arg], {})
            os._exit(0)
        os.wait()
        print("detached a grandchild", flush=True)
        while True:
            time.sleep(3600)
    elif mode == "count":
        n = 0
        while True:
            n += 1
            sys.stdout.write(f"line {n}\n")
            sys.stdout.flush()
            time.sleep(0.001)
    elif mode == "leak":
        blob = bytearray(int(arg) * 2**20)
        for i in range(0, len(blob), 4096):
            blob[i] = 1
        while True:
            time.sleep(3600)
    elif mode == "share":
        megabytes, port = sys.argv[2], sys.argv[3]
        blob = bytearray(int(megabytes) * 2**20)
        for i in range(0, len(blob), 4096):
            blob[i] = 1
        for _ in range(2):
            if os.fork() == 0:
                while True:
                    time.sleep(3600)
        s = hold(int(port))
        print(f"sharing {megabytes} MiB with 2 children, port {port}", flush=True)
        serve_forever(s)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
