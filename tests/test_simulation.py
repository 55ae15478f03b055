"""The engine: real overlap, deterministic counts for a seed, nothing lost, rows reconcile."""

from array import array

from data_insertion.engine import SimulationConfig, ascending, run_simulation
from data_insertion.models import Order, Product, User
from tests.conftest import all_databases

pytestmark = all_databases


def rows() -> dict[str, int]:
    return {
        "user": User.objects.count(),
        "product": Product.objects.count(),
        "order": Order.objects.count(),
    }


def test_demo_run_matches_the_seed_data_set():
    summary = run_simulation(SimulationConfig())
    counts = {m: (s.inserted, s.rejected, s.failed) for m, s in summary.models.items()}
    assert counts == {"user": (8, 2, 0), "product": (9, 1, 0), "order": (8, 2, 0)}
    assert rows() == {"user": 8, "product": 9, "order": 8}
    assert summary.ok
    assert User.objects.filter(name="Zoë").exists()


def test_a_rerun_inserts_again_without_duplicates():
    first = run_simulation(SimulationConfig())
    second = run_simulation(SimulationConfig())
    assert second.models["user"].inserted == first.models["user"].inserted == 8
    assert rows()["user"] == 16
    assert second.reconciled


def test_fresh_empties_the_databases_first():
    run_simulation(SimulationConfig())
    summary = run_simulation(SimulationConfig(fresh=True))
    assert rows() == {m: s.inserted for m, s in summary.models.items()}
    assert all(s.rows_before == 0 for s in summary.models.values())


def test_a_seed_gives_the_same_counts_on_every_run():
    config = SimulationConfig(threads=8, records=300, seed=42, invalid_ratio=0.2)
    first = run_simulation(config)
    second = run_simulation(config)
    for model in ("user", "product", "order"):
        a, b = first.models[model], second.models[model]
        assert (a.inserted, a.rejected, a.failed) == (b.inserted, b.rejected, b.failed)
        assert a.attempted == 300
        assert 0 < a.rejected < 300
    assert first.models["user"].inserted + second.models["user"].inserted == rows()["user"]


def test_invalid_ratio_zero_commits_every_record():
    summary = run_simulation(SimulationConfig(threads=5, records=100, seed=1, invalid_ratio=0))
    assert all((s.inserted, s.rejected) == (100, 0) for s in summary.models.values())


def test_every_record_gets_a_verdict_from_every_thread():
    seen = []
    summary = run_simulation(
        SimulationConfig(threads=20, records=200, seed=3), on_result=seen.append
    )
    assert len(seen) == 600
    for model in summary.models.values():
        assert model.attempted == model.inserted + model.rejected + model.failed == 200
        assert len(model.threads) == 20
        assert sum(t.handled for t in model.threads) == 200


def test_orders_reference_only_users_and_products_that_exist():
    run_simulation(SimulationConfig(threads=10, records=200, seed=5, invalid_ratio=0.3))
    user_ids = set(User.objects.values_list("id", flat=True))
    product_ids = set(Product.objects.values_list("id", flat=True))
    for user_id, product_id in Order.objects.values_list("user_id", "product_id"):
        assert user_id in user_ids and product_id in product_ids


def test_300_threads_x_3000_records_lose_nothing():
    summary = run_simulation(SimulationConfig(threads=300, records=3000, seed=7))
    assert summary.failed == 0
    assert summary.reconciled
    assert rows() == {m: s.inserted for m, s in summary.models.items()}
    assert all(s.attempted == 3000 for s in summary.models.values())


def test_committed_ids_reach_the_order_phase_ascending_and_compact():
    """Ids come in commit order; with a second process writing they may not: either way the
    order phase gets them ascending, in an 8-byte array rather than a list of ints."""
    in_order = array("q", [3, 5, 9])
    assert ascending(in_order) is in_order
    shuffled = ascending(array("q", [9, 3, 5]))
    assert list(shuffled) == [3, 5, 9]
    assert shuffled.typecode == "q"
