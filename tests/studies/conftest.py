import os

import pytest

import studies
from studies import design


def pytest_generate_tests(metafunc):
    if "db_url" in metafunc.fixturenames:
        metafunc.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def db_url(request, tmp_path):
    """A fresh, empty database: a SQLite file, or a new database on the PostgreSQL server that
    .ci/run starts (STUDIO_TEST_PG_URL). Without that server the PostgreSQL case is skipped,
    except where STUDIO_REQUIRE_POSTGRES=1 (CI), where it fails."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'studies.sqlite'}"
        return
    base = os.environ.get("STUDIO_TEST_PG_URL")
    if not base:
        if os.environ.get("STUDIO_REQUIRE_POSTGRES") == "1":
            pytest.fail("STUDIO_REQUIRE_POSTGRES=1 but STUDIO_TEST_PG_URL is not set (.ci/run starts PostgreSQL)")
        pytest.skip("no PostgreSQL server (STUDIO_TEST_PG_URL); .ci/run starts one")
    from sqlalchemy import create_engine, text
    name = f"t_{os.getpid()}_{abs(hash(request.node.nodeid)) % 10**8}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def trust_study():
    """A small trust study on the shapes models (strong vs weak), built once."""
    d = design.StudyDesign("trust", "Which robot?", ("shapes-resnet", "shapes-weak"),
                           stronger="shapes-resnet", n_images=6, require_correct=True)
    return d, *design.build_study(d)


@pytest.fixture
def saved_trust(db_url, trust_study):
    d, config, trials, stimuli = trust_study
    store = studies.Store(db_url)
    code = store.save_study(d.title, d.kind, config, trials, stimuli)
    yield store, code, trials
    store.dispose()
