"""The ``own_postgres`` fixture: a throwaway PostgreSQL server the test owns (bench.pgserver), so
it can stop and restart it. Skipped where PostgreSQL is not installed, except in CI
(STUDIO_REQUIRE_POSTGRES=1), where that fails."""
import os

import pytest

from bench.pgserver import Server, Unavailable, free_port

__all__ = ["own_postgres", "free_port"]


@pytest.fixture
def own_postgres():
    try:
        server = Server()
    except Unavailable as err:
        if os.environ.get("STUDIO_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"STUDIO_REQUIRE_POSTGRES=1 but {err}")
        pytest.skip(str(err))
    yield server
    server.close()
