import pytest

# Threads cannot share a test's transaction: tests that start workers use real transactions
# on every database.
all_databases = pytest.mark.django_db(transaction=True, databases="__all__")


@pytest.fixture
def output_dir(tmp_path):
    """A directory for files a test writes (JSON, PDF), never the repository."""
    return tmp_path
