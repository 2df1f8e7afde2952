import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from charpipe import sharding


def test_each_slot_continues_where_it_stopped():
    ids = np.arange(1000) % 251
    layout = sharding.plan(len(ids), batch_size=7, n_steps=10)
    win, starts = sharding.windows(ids, layout)
    assert win.shape == (layout.n_batches, 7, 11)
    assert np.array_equal(win[1:, :, 0], win[:-1, :, -1])
    # Slot i reads stream i, one stretch of the text, start to end.
    for slot in range(7):
        stream = np.concatenate([win[0, slot, :1]] + [w[slot, 1:] for w in win])
        begin = slot * layout.stream_length
        assert np.array_equal(stream, ids[begin : begin + len(stream)])


def test_a_batch_size_that_does_not_divide_the_text():
    ids = np.arange(1003)
    layout = sharding.plan(len(ids), batch_size=10, n_steps=9)
    assert layout.stream_length == 100
    assert layout.n_batches == 11  # (100 - 1) // 9
    assert layout.dropped == 1003 - 10 * (11 * 9 + 1)
    win, starts = sharding.windows(ids, layout)
    assert np.array_equal(win[..., 0], starts)  # ids equal their offsets here
    sharding.check_continuity(win, starts, 9)


def test_round_trip_through_parquet_keeps_layout_and_order(tmp_path):
    ids = (np.arange(5000) % 39).astype(np.uint8)
    layout = sharding.plan(len(ids), batch_size=8, n_steps=20)
    sharding.write(tmp_path / "t.parquet", ids, layout)
    win, read_layout = sharding.read(tmp_path / "t.parquet")
    assert read_layout == layout
    assert win.dtype == np.uint8
    assert np.array_equal(win, sharding.windows(ids, layout)[0])


def test_broken_continuity_is_caught():
    ids = np.arange(500)
    layout = sharding.plan(len(ids), batch_size=4, n_steps=10)
    win, starts = sharding.windows(ids, layout)
    win[3, 2, 0] += 1
    with pytest.raises(sharding.ShardError, match="batch 3, slot 2"):
        sharding.check_continuity(win, starts, 10)


def test_too_short_text_names_both_numbers():
    with pytest.raises(sharding.ShardError, match=r"has 300 characters.*3232 needed"):
        sharding.plan(300, batch_size=32, n_steps=100)


@settings(max_examples=80, deadline=None)
@given(n_ids=st.integers(2, 3000), batch_size=st.integers(1, 40),
       n_steps=st.integers(1, 60))
def test_continuity_on_random_sizes(n_ids, batch_size, n_steps):
    ids = np.arange(n_ids)
    try:
        layout = sharding.plan(n_ids, batch_size, n_steps)
    except sharding.ShardError:
        assert n_ids // batch_size < n_steps + 1
        return
    win, starts = sharding.windows(ids, layout)
    assert np.array_equal(win[1:, :, 0], win[:-1, :, -1])
    assert np.array_equal(win[..., 0], starts)
    assert 0 <= layout.dropped < batch_size * n_steps
    assert win.max() < n_ids


def test_written_in_row_groups_from_a_reader_equals_the_whole(tmp_path, monkeypatch):
    from charpipe import encoding
    import pyarrow.parquet as pq

    monkeypatch.setattr(encoding, "ROW_GROUP", 17)
    monkeypatch.setattr(sharding, "GROUP_IDS", 30)
    text = "".join(chr(97 + (i * 7) % 26) for i in range(4000))
    encoding.write(tmp_path, text, "0" * 64, 0.05, 0.05, False)
    ids = encoding.read_ids(tmp_path, "train")
    layout = sharding.plan(len(ids), batch_size=6, n_steps=9)
    sharding.write(tmp_path / "t.parquet", encoding.IdsReader(tmp_path, keep=14), layout)
    assert pq.ParquetFile(tmp_path / "t.parquet").metadata.num_row_groups > 5
    win, read_layout = sharding.read(tmp_path / "t.parquet")
    assert read_layout == layout
    assert np.array_equal(win, sharding.windows(ids, layout)[0])
