"""Real servers for the supervisor's tests: nginx (a master and two workers) and Tomcat 10.

Both from Debian (`apt-get install -y --no-install-recommends nginx tomcat10 default-jre-headless`);
tests skip when they are missing. Everything they write stays under a private directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

NGINX = "/usr/sbin/nginx"
CATALINA_HOME = "/usr/share/tomcat10"
TOMCAT_CONF = "/etc/tomcat10"


def need(*paths: str) -> None:
    missing = [p for p in paths if not os.path.exists(p)]
    if missing or shutil.which("java") is None and CATALINA_HOME in paths:
        pytest.skip(f"not installed: {', '.join(missing) or 'java'}")


def nginx(prefix: Path, port: int) -> list[str]:
    """argv of nginx in the foreground (`daemon off`), a master and two workers, all paths under prefix."""
    need(NGINX)
    for d in ("logs", "tmp", "html"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    (prefix / "html" / "index.html").write_text("ok\n")
    user = "user root;\n" if os.geteuid() == 0 else ""
    tmp = prefix / "tmp"
    (prefix / "nginx.conf").write_text(
        f"{user}daemon off;\nmaster_process on;\nworker_processes 2;\npid {prefix}/nginx.pid;\n"
        f"error_log {prefix}/logs/error.log;\nevents {{ worker_connections 64; }}\n"
        f"http {{\n  access_log {prefix}/logs/access.log;\n  client_body_temp_path {tmp}/body;\n"
        f"  proxy_temp_path {tmp}/proxy;\n  fastcgi_temp_path {tmp}/fastcgi;\n  uwsgi_temp_path {tmp}/uwsgi;\n"
        f"  scgi_temp_path {tmp}/scgi;\n"
        f"  server {{ listen 127.0.0.1:{port}; root {prefix}/html; }}\n}}\n")
    return [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf")]


def tomcat(base: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """argv and env of Tomcat 10 by `catalina.sh run` (it execs java: the component's pid is the JVM),
    with a private CATALINA_BASE, one connector on port, no shutdown port, a small serial-GC heap."""
    need(CATALINA_HOME, TOMCAT_CONF)
    conf = base / "conf"
    conf.mkdir(parents=True, exist_ok=True)
    for name in ("web.xml", "logging.properties", "catalina.properties", "context.xml"):
        shutil.copy(os.path.join(TOMCAT_CONF, name), conf / name)
    for d in ("logs", "temp", "work", "webapps/ROOT"):
        (base / d).mkdir(parents=True, exist_ok=True)
    (base / "webapps" / "ROOT" / "index.html").write_text("ok\n")
    (conf / "server.xml").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<Server port="-1" shutdown="SHUTDOWN">\n'
        '  <Service name="Catalina">\n'
        f'    <Connector port="{port}" address="127.0.0.1" protocol="HTTP/1.1" connectionTimeout="20000"/>\n'
        '    <Engine name="Catalina" defaultHost="localhost">\n'
        '      <Host name="localhost" appBase="webapps" unpackWARs="false" autoDeploy="false"/>\n'
        '    </Engine>\n  </Service>\n</Server>\n')
    env = {"CATALINA_HOME": CATALINA_HOME, "CATALINA_BASE": str(base), "CATALINA_TMPDIR": str(base / "temp"),
           "JAVA_OPTS": "-Xmx192m -XX:+UseSerialGC -Djava.security.egd=file:/dev/./urandom"}
    return [f"{CATALINA_HOME}/bin/catalina.sh", "run"], env
