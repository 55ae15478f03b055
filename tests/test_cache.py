"""The shared cache of the order checks, against a real Redis (DS_TEST_REDIS_URL, by default
database 1 of the local server; the `prefix` fixture): positive answers cached, deletes seen at
once, an outage that costs nothing but time."""

import io
import time
import uuid

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connections
from django.test import Client
from pypdf import PdfReader

from data_insertion import reference_cache
from data_insertion.engine import SimulationConfig, run_simulation
from data_insertion.housekeeping import empty_databases
from data_insertion.models import Product, User
from data_insertion.runs.models import Run
from data_insertion.services import UNKNOWN_USER, insert_order, insert_product, insert_user
from data_insertion.summary import RunSummary
from data_insertion.tallies import RunTally
from tests.conftest import CLOSED_PORT_URL, REDIS_URL, all_databases, point_cache_at
from tests.proxy import TcpProxy

pytestmark = all_databases


@pytest.fixture
def shared_cache(settings, prefix):
    point_cache_at(settings, REDIS_URL, prefix)
    reference_cache.take_counts()
    return reference_cache.shared_cache()


def user_and_product() -> tuple[int, int]:
    return (
        insert_user(name="Zoë", email=f"{uuid.uuid4().hex[:8]}@example.com").pk,
        insert_product(name="Lamp", price="12.50").pk,
    )


def test_a_reference_checked_once_is_found_in_the_cache_the_next_time(shared_cache):
    user, product = user_and_product()
    assert insert_order(user_id=user, product_id=product, quantity=1).status == "inserted"
    assert insert_order(user_id=user, product_id=product, quantity=2).status == "inserted"

    counts = reference_cache.take_counts()
    assert (counts["user"].hits, counts["user"].misses) == (1, 1)
    assert (counts["product"].hits, counts["product"].misses) == (1, 1)
    assert counts["user"].errors == 0


def test_a_missing_user_is_never_cached(shared_cache):
    _, product = user_and_product()
    for _ in range(2):
        result = insert_order(user_id=999_999, product_id=product, quantity=1)
        assert result.errors == {"user_id": [UNKNOWN_USER]}
    assert reference_cache.take_counts()["user"].hits == 0


@pytest.mark.parametrize("delete", ["instance", "queryset"])
def test_a_user_deleted_through_the_orm_with_a_warm_cache_is_rejected(shared_cache, delete):
    user, product = user_and_product()
    insert_order(user_id=user, product_id=product, quantity=1)  # the cache now vouches for it
    if delete == "instance":
        User.objects.get(pk=user).delete()
    else:
        User.objects.filter(pk=user).delete()

    result = insert_order(user_id=user, product_id=product, quantity=1)
    assert result.status == "rejected"
    assert result.errors == {"user_id": [UNKNOWN_USER]}


def test_a_user_deleted_in_the_admin_with_a_warm_cache_is_rejected(shared_cache, client):
    get_user_model().objects.create_superuser("admin", "admin@example.com", "pw-for-tests")
    client.login(username="admin", password="pw-for-tests")
    user, product = user_and_product()
    insert_order(user_id=user, product_id=product, quantity=1)

    deleted = client.post(f"/admin/data_insertion/user/{user}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not User.objects.filter(pk=user).exists()
    assert insert_order(user_id=user, product_id=product, quantity=1).status == "rejected"


def test_a_check_that_raced_a_delete_stores_nothing_a_later_check_trusts(shared_cache):
    """The check reads the database, then the user is deleted (and the cache told), then the
    check stores its answer: the stale entry it wrote is hidden by the delete's tombstone."""
    user, product = user_and_product()

    def look_up_then_lose_the_race(ids: list[int]) -> set[int]:
        found = set(User.objects.filter(pk__in=ids).values_list("pk", flat=True))
        User.objects.filter(pk__in=ids).delete()
        return found

    found = shared_cache.existing_ids({"user": [user]}, {"user": look_up_then_lose_the_race})
    assert found == {"user": {user}}  # the check started before the delete returned

    assert insert_order(user_id=user, product_id=product, quantity=1).status == "rejected"


def test_a_changed_product_is_asked_of_the_database_again(shared_cache):
    user, product = user_and_product()
    insert_order(user_id=user, product_id=product, quantity=1)
    changed = Product.objects.get(pk=product)
    changed.name = "Desk lamp"
    changed.save()
    reference_cache.take_counts()

    insert_order(user_id=user, product_id=product, quantity=1)
    counts = reference_cache.take_counts()
    assert (counts["product"].hits, counts["product"].misses) == (0, 1)
    assert counts["user"].hits == 1


def test_emptying_the_databases_forgets_every_entry(shared_cache):
    user, product = user_and_product()
    insert_order(user_id=user, product_id=product, quantity=1)
    empty_databases()
    product = insert_product(name="Lamp", price="1").pk

    assert insert_order(user_id=user, product_id=product, quantity=1).status == "rejected"


def test_a_delete_in_sql_alone_is_seen_once_the_entry_expires(settings, prefix):
    """What the cache cannot promise: a delete that bypasses Django sends no signal."""
    point_cache_at(settings, REDIS_URL, prefix, ttl=1)
    user, product = user_and_product()
    insert_order(user_id=user, product_id=product, quantity=1)
    with connections["users_db"].cursor() as cursor:
        cursor.execute("DELETE FROM data_insertion_user WHERE id = %s", [user])

    assert insert_order(user_id=user, product_id=product, quantity=1).status == "inserted"
    time.sleep(1.1)  # the entry's lifetime, DS_CACHE_TTL=1

    assert insert_order(user_id=user, product_id=product, quantity=1).status == "rejected"


def test_a_run_with_redis_unreachable_commits_everything_and_warns(settings, prefix):
    point_cache_at(settings, CLOSED_PORT_URL, prefix)
    summary = run_simulation(SimulationConfig(threads=4, records=300))

    assert summary.failed == 0 and summary.ok
    errors = sum(cache.errors for cache in summary.reference_cache)
    assert errors > 0
    assert summary.warnings == [f"cache unreachable: {errors:,} checks went to the database"]
    assert RunSummary.from_dict(summary.to_dict()).reference_cache == summary.reference_cache


def test_redis_going_away_mid_run_fails_no_record(settings, prefix):
    with TcpProxy(REDIS_URL) as proxy:
        point_cache_at(settings, proxy.url(REDIS_URL), prefix)
        orders_seen = []

        def cut_after_some_orders(result) -> None:
            if result.model == "order":
                orders_seen.append(result)
                if len(orders_seen) == 100:
                    proxy.close()

        summary = run_simulation(
            SimulationConfig(threads=4, records=600), on_result=cut_after_some_orders
        )

    assert summary.failed == 0 and summary.reconciled
    by_model = {cache.model: cache for cache in summary.reference_cache}
    assert by_model["user"].hits + by_model["user"].misses > 0  # it served before the cut
    assert by_model["user"].errors > 0  # and the checks went to the database after it
    assert summary.warnings


def test_a_delete_the_cache_cannot_hear_of_is_refused(settings, prefix):
    point_cache_at(settings, CLOSED_PORT_URL, prefix)
    user, _ = user_and_product()
    with pytest.raises(reference_cache.CacheUnreachable, match="the change is not made"):
        User.objects.get(pk=user).delete()
    assert User.objects.filter(pk=user).exists()


def test_a_runs_cache_counts_are_on_the_console_in_the_pdf_and_on_its_page(shared_cache, tmp_path):
    output = io.StringIO()
    pdf = tmp_path / "run.pdf"
    call_command(
        "generate_pdf_report", "--records", "300", "--threads", "4", "--output", str(pdf),
        verbosity=0, stdout=output,
    )  # fmt: skip

    console = output.getvalue()
    assert "Shared cache, order checks (ids):" in console
    user_line = next(line for line in console.splitlines() if line.startswith("  user "))
    assert "hits" in user_line and "0 errors" in user_line
    text = " ".join(page.extract_text() for page in PdfReader(pdf).pages)
    assert "Shared cache" in text and "Hit ratio" in text
    account = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    staff = Client()
    staff.force_login(account)
    page = staff.get(f"/runs/{Run.objects.latest('pk').pk}/").content.decode()
    assert '<table id="cache">' in page and "Time saved ms" in page


def test_the_cache_counts_of_slices_add_up_when_their_tallies_merge():
    slices = [RunTally(run_started=0.0) for _ in range(2)]
    for hits, tally in enumerate(slices, start=1):
        tally.models["order"].add_cache_counts({"user": reference_cache.CacheCounts(hits=hits)})

    whole = RunTally.merged(slices, run_started=0.0)
    assert whole.models["order"].cache_counts["user"].hits == 3
