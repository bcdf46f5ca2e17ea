"""A throwaway PostgreSQL server on 127.0.0.1 for tests: initdb into a temp dir, stopped afterwards."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

PG_BINS = [Path("/usr/lib/postgresql") / v / "bin" for v in ("17", "16", "15", "14", "13")]


def find_pg_ctl() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).resolve()
    for d in PG_BINS:
        if (d / "pg_ctl").exists():
            return d / "pg_ctl"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThrowawayPostgres:
    def __init__(self) -> None:
        pg_ctl = find_pg_ctl()
        if pg_ctl is None:
            raise FileNotFoundError("pg_ctl not found")
        self.bindir = pg_ctl.parent
        self.tmp = Path(tempfile.mkdtemp(prefix="labos-pg-"))
        self.datadir = self.tmp / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root
            self.user = "postgres"
            pw = pwd.getpwnam(self.user)
            os.chown(self.tmp, pw.pw_uid, pw.pw_gid)

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> str:
        self._run(self.bindir / "initdb", "-D", self.datadir, "-U", "labos", "--auth=trust", "-E", "UTF8")
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories={self.tmp} -c fsync=off -c max_connections=200"
        self._run(
            self.bindir / "pg_ctl", "-D", self.datadir, "-o", opts, "-l", self.tmp / "log", "-w", "start"
        )
        self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "labos", "labos")
        return self.url("labos")

    def url(self, db: str) -> str:
        return f"postgresql+psycopg://labos@127.0.0.1:{self.port}/{db}"

    def create_database(self, name: str) -> str:
        self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "labos", name)
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.datadir, "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)
