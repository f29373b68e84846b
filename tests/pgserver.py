"""A real PostgreSQL server for the tests: Debian's `postgresql` binaries, a data directory in a
temporary folder, listening on 127.0.0.1 at a free port only, fsync off, stopped afterwards.
Run as the `postgres` user when the tests run as root (initdb refuses root). `make test`
installs the package when it is missing; without it these tests fail, saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

INSTALL = "apt-get install postgresql (`make test` does it when run as root)"


def pg_bin(name: str) -> Path:
    """A PostgreSQL program: on PATH, else in Debian's /usr/lib/postgresql/<version>/bin."""
    found = shutil.which(name)
    if found:
        return Path(found)
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if not versions:
        raise FileNotFoundError(f"PostgreSQL's {name} is not installed: {INSTALL}")
    return versions[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class PgServer:
    base: Path
    port: int
    as_user: list[str]  # the command prefix that runs a program as the server's owner

    @property
    def data(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_user, str(pg_bin("pg_ctl")), "-D", str(self.data), *args],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self) -> None:
        opts = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c fsync=off "
            "-c full_page_writes=off -c max_connections=100"
        )
        self._ctl("-l", str(self.base / "server.log"), "-o", opts, "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run `statement` as the superuser."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as con:
            con.execute(statement)  # type: ignore[arg-type]

    def new_database(self) -> str:
        """A fresh, empty database; its URL (the superuser's)."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name}")
        return self.url(name)


def start_server() -> PgServer:
    """initdb in a fresh temporary folder and start the server; the caller stops it."""
    initdb = pg_bin("initdb")
    base = Path(tempfile.mkdtemp(prefix="safellm-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb and postgres refuse to run as root
        shutil.chown(base, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [
            *as_user,
            str(initdb),
            "-D",
            str(base / "data"),
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    server = PgServer(base, _free_port(), as_user)
    server.start()
    return server


def remove(server: PgServer) -> None:
    try:
        server.stop()
    finally:
        shutil.rmtree(server.base, ignore_errors=True)
