"""A stage's output on disk stays within its cap: the start and the end kept, what was dropped said."""

from __future__ import annotations

from pathlib import Path

from ansible_collections.kvmops.rolling.plugins.module_utils._output_cap import OutputCap


def test_a_stream_under_its_cap_is_left_as_it_is(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"x" * 100)
    cap = OutputCap({"stdout": str(log)}, head=40, tail=40)
    cap.check()
    cap.check(final=True)
    assert log.read_bytes() == b"x" * 100 and cap.dropped == {"stdout": 0}


def test_a_flood_keeps_its_start_and_its_end_and_counts_what_went_between(tmp_path: Path) -> None:
    log = tmp_path / "stdout.log"
    written = b"".join(b"line %06d\n" % number for number in range(100000))  # 1.2 MB
    with open(log, "ab", 0) as handle:
        cap = OutputCap({"stdout": str(log)}, head=1000, tail=2000)
        for start in range(0, len(written), 50000):  # the script writing, the runner checking in between
            handle.write(written[start:start + 50000])
            cap.check()
            assert log.stat().st_size < 2 * (1000 + 2000 + 200) + 50000
        cap.check(final=True)
    kept = log.read_bytes()
    assert kept.startswith(written[:1000]) and kept.endswith(written[-2000:])
    marker = kept[1000:-2000]
    assert marker == (b"\n[kvmops.rolling: %d bytes of output dropped here: the first 1000 and the last 2000 bytes "
                      b"are kept]\n" % (len(written) - 3000))
