"""The e2e suite's notion of "a sample vmagent must have scraped" (testbed/counter.py) is right:
if it were too lenient the outage tests could pass without checking anything."""

from __future__ import annotations

from testbed.counter import Print, ScrapeRun, certainly_scraped, scrape_phase


def prints_every_second(first: float, count: int, start_value: int = 1) -> list[Print]:
    return [Print(start_value + i, first + i) for i in range(count)]


class TestCertainlyScraped:
    def test_values_half_a_second_from_the_scrapes_are_all_expected(self) -> None:
        """Rewrites at .5, scrapes at .0: every value but the last (still in the file) was seen."""
        prints = prints_every_second(100.5, 10)
        assert certainly_scraped(prints, [ScrapeRun(90, 200, phase=0.0)]) == set(range(1, 10))

    def test_values_rewritten_at_the_scrape_instant_are_left_out(self) -> None:
        """Rewrites 20 ms after the scrapes: jitter decides which value a scrape sees, so none is expected."""
        prints = prints_every_second(100.02, 10)
        assert certainly_scraped(prints, [ScrapeRun(90, 200, phase=0.0)]) == set()

    def test_values_printed_while_vmagent_was_down_are_left_out(self) -> None:
        """Only values in the file while some vmagent run scraped count."""
        prints = prints_every_second(100.5, 20)
        runs = [ScrapeRun(90, 105.2, phase=0.0), ScrapeRun(110.1, 200, phase=0.7)]
        expected = certainly_scraped(prints, runs)
        # 10 was replaced (110.5) before the second run's first scrape (110.7); 20 is still in the file.
        assert expected == {1, 2, 3, 4, 5} | set(range(11, 20))

    def test_values_whose_only_scrape_failed_are_left_out(self) -> None:
        """A scrape that timed out (its `up` is 0 at the centre) saw nothing: the value it alone could have seen
        is not expected (a loaded run counted such values as lost), the others still are."""
        prints = prints_every_second(100.5, 10)
        expected = certainly_scraped(prints, [ScrapeRun(90, 200, phase=0.0)], failed=[103.0, 106.0])
        assert expected == set(range(1, 10)) - {3, 6}

    def test_scrape_phase_is_the_typical_offset(self) -> None:
        assert abs(scrape_phase([10.391, 11.390, 12.392, 13.9]) - 0.392) < 1e-9
