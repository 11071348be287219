from __future__ import annotations

import pytest

from edge_metrics.durations import DurationError, format_duration, parse_duration


class TestParseDuration:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("500ms", 0.5), ("10s", 10), ("1m30s", 90), ("2h", 7200), ("1.5s", 1.5), ("250us", 0.00025), ("1h1m1s", 3661)],
    )
    def test_go_durations(self, text: str, seconds: float) -> None:
        """Go-style durations, as in Prometheus and Kubernetes configs, become seconds."""
        assert parse_duration(text) == pytest.approx(seconds)

    @pytest.mark.parametrize("text", ["", "10", "s", "10 s", "-5s", "1d", "abc", "10s5"])
    def test_invalid(self, text: str) -> None:
        """Anything else is rejected with a reason."""
        with pytest.raises(DurationError):
            parse_duration(text)

    @pytest.mark.parametrize("text", ["0s", "0ms", "0h0m"])
    def test_not_positive(self, text: str) -> None:
        """Zero is not an interval."""
        with pytest.raises(DurationError, match="must be positive"):
            parse_duration(text)


class TestFormatDuration:
    @pytest.mark.parametrize(
        ("seconds", "text"), [(0.5, "500ms"), (10, "10s"), (90, "1m30s"), (7200, "2h"), (60, "1m")]
    )
    def test_round_trip_spelling(self, seconds: float, text: str) -> None:
        """Plans and logs spell intervals the way users wrote them."""
        assert format_duration(seconds) == text
        assert parse_duration(text) == pytest.approx(seconds)
