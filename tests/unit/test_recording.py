"""Recordings: rotation by size, gzip read back transparently (also when cut
short), and a full queue drops and counts instead of blocking the caller."""

from __future__ import annotations

import gzip
from pathlib import Path

from tradewind.exchanges.common.recording import Recorder, open_recording
from tradewind.exchanges.replay import bundled_recording


def test_rotates_by_size_into_segments_that_sort_in_order(tmp_path: Path) -> None:
    lines = bundled_recording().read_bytes().splitlines()[:500]
    rec = Recorder(tmp_path / "r.jsonl.gz", max_bytes=50_000)
    rec.start()
    for line in lines:
        rec.put(line)
    rec.close()
    assert rec.written == 500 and rec.dropped == 0 and rec.error is None
    assert len(rec.files) > 1
    assert rec.files == sorted(tmp_path.glob("r.*.jsonl.gz"))
    back: list[bytes] = []
    for f in rec.files:
        with open_recording(f) as fh:
            back += [b.rstrip(b"\n") for b in fh]
    assert back == lines


def test_a_gzip_cut_short_yields_what_it_holds(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl.gz"
    data = gzip.compress(b"".join(b'{"n":%d}\n' % i for i in range(2000)))
    path.write_bytes(data[: len(data) // 2])
    with open_recording(path) as fh:
        got = list(fh)
    assert 0 < len(got) < 2000
    assert all(line.endswith(b"}\n") for line in got[:-1])


def test_a_full_queue_drops_and_counts(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "q.jsonl", capacity=3)
    for i in range(5):
        rec.put(b"x%d" % i)  # not started: nothing drains the queue
    assert rec.dropped == 2
    rec.start()
    rec.close()
    assert (tmp_path / "q.jsonl").read_bytes() == b"x0\nx1\nx2\n"
