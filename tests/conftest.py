import pytest

from data_insertion.topology.breakers import reset_breakers

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
