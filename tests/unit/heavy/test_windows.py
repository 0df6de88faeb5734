"""Ragged batching's choice of batches: like lengths together where a call costs little, all together where it
costs much, and a model call's fixed cost learnt from the calls run."""

from __future__ import annotations

import random

from inferstack.heavy.windows import PRIOR_OVERHEAD, CallCost, partition


def test_where_a_call_costs_little_lengths_far_apart_run_apart() -> None:
    sizes = [24, 11, 23, 12, 24, 11]
    batches = partition(sizes, [1] * 6, max_rows=32, overhead=4)  # 2 calls: 8 + 3*12 + 3*24 = 116
    assert sorted(sorted(sizes[i] for i in b) for b in batches) == [[11, 11, 12], [23, 24, 24]]
    assert [max(sizes[i] for i in b) for b in batches] == [12, 24]  # shortest first


def test_where_a_call_costs_much_everything_runs_as_one_batch() -> None:
    sizes = [24, 11, 23, 12, 24, 11]
    assert partition(sizes, [1] * 6, max_rows=32, overhead=10_000) == [[0, 1, 2, 3, 4, 5]]


def test_every_request_is_in_exactly_one_batch_of_at_most_max_rows() -> None:
    rnd = random.Random(3)
    for _ in range(200):
        n = rnd.randint(1, 40)
        sizes, rows = [rnd.randint(1, 64) for _ in range(n)], [rnd.randint(1, 6) for _ in range(n)]
        batches = partition(sizes, rows, max_rows=16, overhead=rnd.choice([0, 8, 64, 1e6]))
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(sum(rows[i] for i in b) <= 16 for b in batches)


def test_the_split_is_the_cheapest() -> None:
    # 4 short and 4 long: apart costs 2 calls + 4*2 + 4*10 = 2*5 + 48; together 5 + 8*10 = 85
    sizes = [2, 10, 2, 10, 2, 10, 2, 10]
    assert len(partition(sizes, [1] * 8, max_rows=8, overhead=5)) == 2
    assert len(partition(sizes, [1] * 8, max_rows=8, overhead=40)) == 1  # 2*40 + 48 > 40 + 80


def test_a_request_larger_than_max_rows_runs_alone() -> None:
    assert partition([5, 5], [40, 1], max_rows=32, overhead=1e6) == [[0], [1]]


def test_call_cost_learns_a_fixed_cost_per_call() -> None:
    cost = CallCost()
    assert cost.overhead == PRIOR_OVERHEAD  # nothing seen yet
    rnd = random.Random(0)
    for _ in range(200):
        elements = rnd.randint(10, 800)
        cost.observe(elements, 3.0 + 0.125 * elements)  # 3 ms a call, 0.125 ms an element: 24 elements
    assert abs(cost.overhead - 24) < 0.5


def test_call_cost_keeps_its_prior_while_calls_are_all_alike() -> None:
    cost = CallCost(prior=50)
    for _ in range(100):
        cost.observe(320, 40.0)
    assert cost.overhead == 50


def test_without_a_binding_cap_the_split_is_the_cheapest_of_all() -> None:
    import itertools

    def cost(batches: list[list[int]], sizes: list[int], rows: list[int], overhead: float) -> float:
        return sum(overhead + sum(rows[i] for i in b) * max(sizes[i] for i in b) for b in batches)

    def splits(items: list[int]) -> list[list[list[int]]]:  # every set partition
        if not items:
            return [[]]
        first, rest = items[0], items[1:]
        out = []
        for part in splits(rest):
            out.append([[first], *part])
            for k in range(len(part)):
                out.append([*part[:k], [first, *part[k]], *part[k + 1:]])
        return out

    rnd = random.Random(5)
    for _ in range(60):
        n = rnd.randint(1, 7)
        sizes, rows = [rnd.randint(1, 9) for _ in range(n)], [rnd.randint(1, 3) for _ in range(n)]
        overhead = rnd.choice([0.5, 3, 10, 40])
        best = min(cost(p, sizes, rows, overhead) for p in splits(list(range(n))))
        got = partition(sizes, rows, max_rows=sum(rows), overhead=overhead)
        assert cost(got, sizes, rows, overhead) == best
        assert sorted(itertools.chain.from_iterable(got)) == list(range(n))


def test_requests_of_one_length_stay_together() -> None:
    sizes = [7] * 50 + [3] * 50
    batches = partition(sizes, [1] * 100, max_rows=100, overhead=1)
    assert sorted(len(b) for b in batches) == [50, 50]
