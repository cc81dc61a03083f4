from apps.matching.worker.dedupe import DedupeWindow


def test_window_evicts_oldest_ids_by_count() -> None:
    w = DedupeWindow(max_ids=3, max_age_ns=10**18)
    w.add_batch(1, [b"a", b"b"])
    w.add_batch(2, [b"c", b"d"])
    assert [x in w for x in (b"a", b"b", b"c", b"d")] == [False, True, True, True]
    assert len(w) == 3


def test_window_evicts_by_age_of_the_batch_stamp() -> None:
    w = DedupeWindow(max_ids=100, max_age_ns=10)
    w.add_batch(100, [b"a"])
    w.add_batch(105, [b"b"])
    w.add_batch(112, [b"c"])
    assert [x in w for x in (b"a", b"b", b"c")] == [False, True, True]


def test_dump_and_load_rebuild_the_same_window() -> None:
    w = DedupeWindow(max_ids=5, max_age_ns=1000)
    for i in range(10):
        w.add_batch(i * 10, [f"id{i}".encode(), f"x{i}".encode()])
    clone = DedupeWindow.load(w.dump(), max_ids=5, max_age_ns=1000)
    assert clone.dump() == w.dump()
    w.add_batch(200, [b"new"])
    clone.add_batch(200, [b"new"])
    assert clone.dump() == w.dump()
