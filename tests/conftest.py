import pytest

from data_insertion.topology.breakers import reset_breakers
from tests.servers import Deployment, server

# Threads cannot share a test's transaction: tests that start workers use real transactions
# on every database.
all_databases = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def output_dir(tmp_path):
    """A directory for files a test writes (JSON, PDF), never the repository."""
    return tmp_path


@pytest.fixture(autouse=True)
def closed_breakers():
    """Each test starts with every database's circuit breaker closed, as each run does."""
    reset_breakers()
    yield
    reset_breakers()


@pytest.fixture
def postgres():
    """The PostgreSQL server DS_TEST_POSTGRES_URL names (else the test is skipped); the
    databases a test makes on it are dropped afterwards."""
    found = server("postgresql")
    yield found
    found.drop_databases()


@pytest.fixture
def mariadb():
    found = server("mysql")
    yield found
    found.drop_databases()


@pytest.fixture(params=["postgresql", "mysql"], ids=["postgresql", "mariadb"])
def any_server(request):
    found = server(request.param)
    yield found
    found.drop_databases()


@pytest.fixture
def deployment(tmp_path):
    """Aliases not placed on a server stay SQLite files in the test's own directory."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    return Deployment(data_dir)
