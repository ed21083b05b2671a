"""The deployment: deploy/entrypoint.sh serves the app against a real PostgreSQL (no container
images can be pulled here, so what the Dockerfile runs is run directly), refuses to start
without its settings, and the compose file is parsed and checked."""
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.pgserver import free_port

ROOT = Path(__file__).resolve().parents[1]
ENTRY = ROOT / "deploy" / "entrypoint.sh"


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STUDIO_", "STREAMLIT_"))}
    return {**env, "STUDIO_PYTHON": sys.executable, **extra}  # the suite's own interpreter (STUDIO_VENV too)


def serve(url: str, port: int, **extra) -> subprocess.Popen:
    env = _env(STUDIO_DB_URL=url, STUDIO_ADMIN_SECRET="s3cret", STREAMLIT_SERVER_COOKIE_SECRET="c00kie",
               PORT=str(port), STREAMLIT_BROWSER_GATHER_USAGE_STATS="false", **extra)
    return subprocess.Popen([str(ENTRY)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def wait_healthy(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the entrypoint exited {proc.returncode}: {proc.stdout.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                if r.read().decode().strip() == "ok":
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("the app did not become healthy")


def stop(proc: subprocess.Popen) -> None:
    import signal
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


def test_entrypoint_refuses_to_start_without_its_settings():
    r = subprocess.run([str(ENTRY)], env=_env(STUDIO_DB_URL="sqlite:///x"), capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2
    assert "set STUDIO_ADMIN_SECRET STREAMLIT_SERVER_COOKIE_SECRET" in r.stderr


def test_entrypoint_says_when_the_database_is_not_there():
    port = free_port()
    r = subprocess.run([str(ENTRY)], env=_env(STUDIO_DB_URL=f"postgresql+psycopg://postgres@127.0.0.1:{port}/x",
                                              STUDIO_ADMIN_SECRET="a", STREAMLIT_SERVER_COOKIE_SECRET="b",
                                              STUDIO_DB_WAIT_S="2"), capture_output=True, text=True, timeout=120)
    assert r.returncode == 3 and "cannot be used" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_entrypoint_serves_the_app_on_postgresql(own_postgres):
    port = free_port()
    proc = serve(own_postgres.url, port)
    try:
        wait_healthy(port, proc)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/?study=abc", timeout=10) as r:
            assert r.status == 200 and b"<div id=\"root\">" in r.read()
        from sqlalchemy import create_engine, inspect
        engine = create_engine(own_postgres.url)
        assert {"studies", "responses", "recruits", "preregistrations"} <= set(inspect(engine).get_table_names())
        engine.dispose()
    finally:
        stop(proc)


def test_compose_file_runs_the_app_on_postgresql_with_a_volume_and_health_checks():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    app, db = compose["services"]["app"], compose["services"]["db"]
    assert app["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (ROOT / app["build"]["dockerfile"]).is_file()
    env = app["environment"]
    assert env["STUDIO_DB_URL"].startswith("postgresql+psycopg://") and "@db:5432/" in env["STUDIO_DB_URL"]
    for secret in ("STUDIO_ADMIN_SECRET", "STREAMLIT_SERVER_COOKIE_SECRET"):
        assert env[secret] == f"${{{secret}:?set {secret}}}"  # from the environment, never in the file
    assert app["depends_on"]["db"]["condition"] == "service_healthy"
    assert "healthcheck" in app and "_stcore/health" in " ".join(app["healthcheck"]["test"])
    assert db["image"].startswith("postgres:") and "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    docker = (ROOT / "deploy" / "Dockerfile").read_text()
    assert 'ENTRYPOINT ["deploy/entrypoint.sh"]' in docker and "HEALTHCHECK" in docker
    assert "COPY requirements.txt" in docker and "USER studio" in docker
