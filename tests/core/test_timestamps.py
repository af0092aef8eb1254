"""Protocol timestamps: the same text datetime gives, for every millisecond (the formatter caches the second)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from hypothesis import given, strategies as st

from workspace_tui.protocol import iso_timestamp, parse_timestamp

_MS = timedelta(milliseconds=1)


def reference(ms: int) -> str:
    dt = datetime.fromtimestamp(ms // 1000, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@given(st.lists(st.integers(min_value=0, max_value=4_102_444_800_000), min_size=1, max_size=20))
def test_every_millisecond_formats_as_datetime_does(stamps):
    for ms in stamps + [s + 1 for s in stamps] + [s - s % 1000 + 999 for s in stamps]:
        assert iso_timestamp(ms) == reference(ms)
        back = parse_timestamp(iso_timestamp(ms)) - datetime(1970, 1, 1, tzinfo=timezone.utc)
        assert back // _MS == ms


def test_now_is_now():
    before = datetime.now(timezone.utc).timestamp()
    stamp = parse_timestamp(iso_timestamp()).timestamp()
    assert before - 0.002 <= stamp <= datetime.now(timezone.utc).timestamp()
