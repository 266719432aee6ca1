"""TLS as first-class settings, against a real TLS redis-server with a throwaway CA
(generated here with openssl: no key or certificate is kept in the repository)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from master_harness import MasterProcess
from redis_server import RedisServer, free_port

from supervisor.errors import EXIT_OK, EXIT_REDIS_UNAVAILABLE, EXIT_USAGE

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent


@dataclass
class Tls:
    url: str
    files: dict[str, str]  # SUPERVISOR_REDIS_*_FILE -> path

    def env(self, **drop: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SUPERVISOR_")}
        env.update({"SUPERVISOR_REDIS_URL": self.url, "PYTHONUNBUFFERED": "1",
                    "PYTHONPATH": os.pathsep.join([str(HERE), str(ROOT)])})
        env.update({name: path for name, path in self.files.items() if not drop.get(name)})
        return env


def openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True,
                   timeout=60)


def make_ca(directory: Path) -> None:
    """A CA, and a server (127.0.0.1) and a client certificate it signed."""
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl(directory, "req", "-x509", *key, "-keyout", "ca.key", "-out", "ca.crt",
            "-days", "1", "-subj", "/CN=supervisor test CA")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        openssl(directory, "req", *key, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        extra = ["-extfile", "server.ext"] if name == "server" else []
        openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
                "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "1", *extra)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tls]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    certs = tmp_path_factory.mktemp("certs")
    make_ca(certs)
    port = free_port()
    server = RedisServer(tmp_path_factory.mktemp("tls-redis"), None, "--tls-port", str(port),
                         "--tls-cert-file", str(certs / "server.crt"),
                         "--tls-key-file", str(certs / "server.key"),
                         "--tls-ca-cert-file", str(certs / "ca.crt"),
                         "--tls-auth-clients", "yes")
    try:
        server.start()
    except RuntimeError:
        pytest.skip("this redis-server has no TLS (--tls-port)")
    yield Tls(f"rediss://127.0.0.1:{port}/0", {
        "SUPERVISOR_REDIS_CA_FILE": str(certs / "ca.crt"),
        "SUPERVISOR_REDIS_CERT_FILE": str(certs / "client.crt"),
        "SUPERVISOR_REDIS_KEY_FILE": str(certs / "client.key")})
    server.stop()


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "supervisor", *args], cwd=HERE, env=env,
                          capture_output=True, text=True, timeout=60)


def test_a_pool_and_the_cli_over_tls_with_a_client_certificate(tls: Tls,
                                                              tmp_path: Path) -> None:
    flags = [f"--redis-{kind}-file={tls.files[f'SUPERVISOR_REDIS_{kind.upper()}_FILE']}"
             for kind in ("ca", "cert", "key")]
    master = MasterProcess([sys.executable, "-m", "supervisor", "run", "--workers", "1",
                            "--tasks", "sample_tasks", *flags], tmp_path,
                           {k: v for k, v in tls.env().items() if "_FILE" not in k})
    try:
        master.notify.wait_for("READY=1", timeout=30)
        done = cli(tls.env(), "enqueue", "sample_tasks.echo", "1", "2", "--wait", "15")
        assert (done.returncode, done.stdout) == (0, "[1, 2]\n"), done.stderr
        master.send(signal.SIGTERM)
        assert master.wait_exit(timeout=30) == EXIT_OK
    finally:
        master.stop()


@pytest.mark.parametrize(("dropped", "says"), [
    (("SUPERVISOR_REDIS_CA_FILE",), "certificate verify failed"),  # the system CAs: unknown
    (("SUPERVISOR_REDIS_CERT_FILE", "SUPERVISOR_REDIS_KEY_FILE"), ""),  # the server wants one
])
def test_tls_trouble_is_one_line(tls: Tls, dropped: tuple[str, ...], says: str) -> None:
    done = cli(tls.env(**dict.fromkeys(dropped, True)), "queues")
    assert done.returncode == EXIT_REDIS_UNAVAILABLE, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot reach Redis at rediss://")
    assert says in lines[0].lower(), lines


def test_a_typo_in_a_tls_url_parameter_is_named(tls: Tls) -> None:
    env = tls.env()
    env["SUPERVISOR_REDIS_URL"] = tls.url + "?ssl_ca_cert=/x.pem"
    done = cli(env, "queues")
    assert done.returncode == EXIT_USAGE
    assert "unknown URL parameter 'ssl_ca_cert'; did you mean 'ssl_ca_certs'?" in done.stderr
    assert "Traceback" not in done.stderr
