from __future__ import annotations

import math

import pytest

from edge_metrics.parse import parse_output
from edge_metrics.samples import Sample


def parse(text: str | bytes, prefix: str = "edge_") -> tuple[list[Sample], list[tuple[int, str]]]:
    data = text.encode() if isinstance(text, str) else text
    result = parse_output(data, prefix=prefix)
    return list(result.samples), [(r.line_number, r.reason) for r in result.rejected]


class TestValues:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [("42", 42.0), ("-3.5", -3.5), ("1e-3", 0.001), ("+Inf", math.inf), ("-Inf", -math.inf), (".5", 0.5),
         ("1.", 1.0), ("2E+2", 200.0), ("inf", math.inf)],
    )
    def test_floats(self, value: str, expected: float) -> None:
        """Values are floats, including Prometheus' special values."""
        samples, rejected = parse(f"humidity={value}\n")
        assert rejected == []
        assert samples == [Sample("edge_humidity", (), expected)]

    def test_nan(self) -> None:
        """NaN is a valid reading (e.g. a sensor reporting 'no data')."""
        samples, _ = parse("x=NaN")
        assert math.isnan(samples[0].value)

    @pytest.mark.parametrize("value", ["abc", "1,5", "0x10", "1_000", "12 34", "--1", "", "1e", "∞"])
    def test_not_numbers(self, value: str) -> None:
        """Anything that is not a float is rejected with the reason."""
        samples, rejected = parse(f"x={value}")
        assert samples == []
        assert len(rejected) == 1 and rejected[0][0] == 1


    @pytest.mark.parametrize(
        "line",
        ["x=1e309", "x=-1e400", "x=+1e309", "x=179769313486231580793728971405303415079934132710037826936173778980444"
         "968292764750946649017977587207096330286416692887910946555547851940402630657488671505820681908902000708383"
         "676273854845817711531764475730270069855571366959622842914819860834936475292719074168444365510704342711559"
         "699508093042880177904174497792", 'x{zone="cpu"}=1e309', 'x{zone="a b"}=-1e999', "x = 1e309 "],
    )
    def test_overflow_is_rejected_with_a_reason(self, line: str) -> None:
        """A number too large for a double is an invalid line ("value out of range"), never a silent +Inf."""
        samples, rejected = parse(f"a=1\n{line}\nb=2\n")
        assert [s.name for s in samples] == ["edge_a", "edge_b"]
        assert rejected == [(2, "value out of range (beyond ±1.8e308)")]

    @pytest.mark.parametrize(("text", "expected"), [("+Inf", math.inf), ("-Inf", -math.inf), ("1.7976e308", 1.7976e308),
                                                    ("1e-400", 0.0)])
    def test_literal_infinities_and_extremes_stay_valid(self, text: str, expected: float) -> None:
        """The literals +Inf/-Inf, the largest doubles and an underflow to 0 are valid readings."""
        samples, rejected = parse(f"x={text}\ny{{a=\"1\"}}={text}\n")
        assert rejected == []
        assert [s.value for s in samples] == [expected, expected]


class TestSeriesBound:
    def test_first_n_series_in_output_order_are_kept(self) -> None:
        """With max_series=3, the first three distinct series in output order are kept and every line of a
        further series is counted as dropped; updates of a kept series are still accepted."""
        text = b'a=1\nb{z="1"}=2\nb{z="2"}=3\nc=4\nb{z="1"}=5\nd=6\nc=7\n'
        result = parse_output(text, prefix="edge_", max_series=3)
        assert [(s.name, s.labels, s.value) for s in result.samples] == [
            ("edge_a", (), 1.0), ("edge_b", (("z", "1"),), 5.0), ("edge_b", (("z", "2"),), 3.0)]
        assert result.dropped == 3
        assert result.rejected == ()

    def test_invalid_lines_do_not_take_a_place(self) -> None:
        """Rejected lines are not series: they neither count against the bound nor as dropped."""
        result = parse_output(b"bad\nx=1e309\na=1\nb=2\nc=3\n", prefix="edge_", max_series=2)
        assert [s.name for s in result.samples] == ["edge_a", "edge_b"]
        assert (len(result.rejected), result.dropped) == (2, 1)

    def test_no_bound_by_default(self) -> None:
        """Without max_series every series is kept."""
        text = "".join(f"k{i}=1\n" for i in range(5000)).encode()
        result = parse_output(text, prefix="edge_")
        assert len(result.samples) == 5000 and result.dropped == 0


class TestLines:
    def test_whitespace_comments_blank(self) -> None:
        """Whitespace around key and value, blank lines and # lines are ignored."""
        samples, rejected = parse("\n# comment\n  temperature  =  21.5  \n\n   # indented comment\nhumidity=40\n")
        assert rejected == []
        assert samples == [Sample("edge_temperature", (), 21.5), Sample("edge_humidity", (), 40.0)]

    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            ("no equals", "expected key=value"),
            ("1abc=1", "invalid key '1abc'"),
            ("bad-key=1", "invalid key 'bad-key'"),
            ("=5", "empty key"),
            ("x=", "missing value"),
            ("collector_up=1", "reserved for the collector"),
        ],
    )
    def test_invalid_lines_keep_the_rest(self, line: str, reason: str) -> None:
        """Each invalid line is rejected with its line number and reason; the valid ones are kept."""
        samples, rejected = parse(f"a=1\n{line}\nb=2\n")
        assert [s.name for s in samples] == ["edge_a", "edge_b"]
        assert len(rejected) == 1
        assert rejected[0][0] == 2
        assert reason in rejected[0][1]

    def test_reserved_prefix_with_custom_prefix(self) -> None:
        """Whatever the prefix, a name that would start with edge_collector_ is refused."""
        _, rejected = parse("collector_x=1", prefix="edge_")
        assert rejected and "reserved" in rejected[0][1]
        samples, rejected = parse("edge_collector_x=1", prefix="")
        assert samples == [] and "reserved" in rejected[0][1]
        samples, rejected = parse("collector_x=1", prefix="site_")
        assert samples == [Sample("site_collector_x", (), 1.0)] and rejected == []

    def test_binary_garbage(self) -> None:
        """Bytes that are not UTF-8 reject their line only."""
        samples, rejected = parse(b"a=1\n\xff\xfe\x00garbage\nb=2\n\x00\x01=3\n")
        assert [s.name for s in samples] == ["edge_a", "edge_b"]
        assert [number for number, _ in rejected] == [2, 4]
        assert rejected[0][1] == "not valid UTF-8"

    def test_duplicate_key_last_wins(self) -> None:
        """The same key twice: the last value wins and the earlier line is reported."""
        result = parse_output(b"t=1\nh=5\nt=2\n", prefix="edge_")
        assert list(result.samples) == [Sample("edge_t", (), 2.0), Sample("edge_h", (), 5.0)]
        assert [(r.line_number, r.reason) for r in result.overridden] == [(1, "overridden by line 3")]


class TestLabels:
    def test_labels(self) -> None:
        """Prometheus label syntax on a key becomes labels on the gauge."""
        samples, rejected = parse('temperature{zone="cpu",sensor="hdc1080"}=45.2')
        assert rejected == []
        assert samples == [Sample("edge_temperature", (("zone", "cpu"), ("sensor", "hdc1080")), 45.2)]

    def test_escapes(self) -> None:
        """Label values unescape \\\\, \\" and \\n, and may contain = , } and spaces."""
        samples, rejected = parse(r'x{a="q\"uote",b="back\\slash",c="new\nline",d="a=b, c}"} = 1')
        assert rejected == []
        assert dict(samples[0].labels) == {"a": 'q"uote', "b": "back\\slash", "c": "new\nline", "d": "a=b, c}"}

    def test_empty_label_set_and_trailing_comma(self) -> None:
        """`x{}` and a trailing comma are valid Prometheus syntax."""
        samples, rejected = parse('x{}=1\ny{a="1",}=2')
        assert rejected == []
        assert samples == [Sample("edge_x", (), 1.0), Sample("edge_y", (("a", "1"),), 2.0)]

    @pytest.mark.parametrize(
        ("line", "reason"),
        [
            ('x{__name__="y"}=1', "reserved"),
            ('x{1a="y"}=1', "invalid label name"),
            ('x{a="1",a="2"}=1', "given twice"),
            ('x{a="1"=1', "expected ',' or '}'"),
            ('x{a="1}=1', "unterminated label value"),
            ('x{a=1}=1', 'expected ="..."'),
            ('x{a="\\t"}=1', "invalid escape"),
            ('x{a="1"} 5', "expected '='"),
            ('x{a="1"}=', "missing value"),
            ('x{a="1"}=abc', "not a number"),
            ('x{a="1"}=1 2', "not a number"),
        ],
    )
    def test_bad_label_syntax(self, line: str, reason: str) -> None:
        """Broken label syntax rejects the line with a reason."""
        samples, rejected = parse(line)
        assert samples == []
        assert len(rejected) == 1 and reason in rejected[0][1], rejected

    def test_same_labels_in_other_order_are_one_series(self) -> None:
        """Label order does not make a new series: the last line wins."""
        result = parse_output(b'x{a="1",b="2"}=1\nx{b="2",a="1"}=2\n', prefix="edge_")
        assert [s.value for s in result.samples] == [2.0]
        assert len(result.overridden) == 1

    def test_inconsistent_label_names_in_a_family(self) -> None:
        """A family keeps the label names of its first line; a line with others is rejected (node_exporter would
        otherwise have to invent empty labels)."""
        samples, rejected = parse('t{zone="cpu"}=1\nt=2\nt{zone="gpu"}=3\nt{other="x"}=4\n')
        assert [dict(s.labels) for s in samples] == [{"zone": "cpu"}, {"zone": "gpu"}]
        assert [n for n, _ in rejected] == [2, 4]
        assert "label names {} differ from {zone} on line 1" in rejected[0][1]


class TestHelpAndType:
    """`# HELP key text` and `# TYPE key gauge|counter` before a key's lines describe it; other `#` lines stay
    comments, so scripts written before these lines existed mean what they meant."""

    @staticmethod
    def declared(text: str) -> tuple[dict[str, tuple[str | None, str | None]], list[tuple[int, str]]]:
        result = parse_output(text.encode(), prefix="edge_")
        rejected = [(r.line_number, r.reason) for r in result.rejected]
        return {m.name: (m.help, m.type) for m in result.metadata}, rejected

    def test_declared_help_and_type_with_prefix(self) -> None:
        """The key takes the prefix; help text and type are kept as given."""
        metadata, rejected = self.declared(
            "# HELP pressure_pascals Air pressure in pascals (Pa).\n# TYPE pressure_pascals gauge\n"
            "pressure_pascals=100653.27\n# TYPE reads_total counter\nreads_total=3\n"
        )
        assert rejected == []
        assert metadata == {"edge_pressure_pascals": ("Air pressure in pascals (Pa).", "gauge"),
                            "edge_reads_total": (None, "counter")}

    def test_plain_comments_and_lowercase_stay_comments(self) -> None:
        """`# comment`, `#HELP` without a space, `# help` and `# HELPER` are ordinary comments, as before."""
        metadata, rejected = self.declared("# comment\n#HELP x y\n# help x y\n# HELPER x\nx=1\n")
        assert metadata == {} and rejected == []

    def test_help_escapes_are_read_as_prometheus_does(self) -> None:
        """`\\\\` is a backslash and `\\n` a newline, so the rendered text is the script's own bytes."""
        metadata, _ = self.declared("# HELP x a \\\\ b\\nc\nx=1\n")
        assert metadata["edge_x"] == ("a \\ b\nc", None)

    @pytest.mark.parametrize(
        ("text", "line", "reason"),
        [
            ("# TYPE x histogram\nx=1", 1, "TYPE 'histogram' for 'x' is not supported (gauge or counter)"),
            ("# TYPE x\nx=1", 1, "TYPE '' for 'x' is not supported (gauge or counter)"),
            ("# HELP\nx=1", 1, "HELP without a key (expected '# HELP key text')"),
            ('# HELP x{a="1"} t\nx=1', 1, "invalid key 'x{a=\"1\"}' in HELP (must match [a-zA-Z_][a-zA-Z0-9_]*, "
                                          "no labels)"),
            ("# TYPE x gauge\n# TYPE x counter\nx=1", 2, "TYPE for 'x' conflicts with line 1 ('gauge')"),
            ("# HELP x one\n# HELP x two\nx=1", 2, "HELP for 'x' conflicts with line 1 ('one')"),
            ("x=1\n# TYPE x counter", 2, "TYPE for 'x' after its first reading on line 1: declare it before"),
            ("# TYPE x counter\nx=-1", 2, "edge_x is a counter: it cannot be negative"),
        ],
    )
    def test_conflicts_are_rejected_with_line_and_reason(self, text: str, line: int, reason: str) -> None:
        """A bad or conflicting declaration is one rejected line with its number and reason; the readings stay."""
        samples, rejected = parse(text)
        assert rejected == [(line, reason)]
        assert [s.name for s in samples] == ([] if "-1" in text else ["edge_x"])

    def test_collector_prefix_is_refused_in_declarations(self) -> None:
        """A HELP for a key that would be a self-metric is rejected like the reading itself."""
        _, rejected = parse("# HELP x t\n", prefix="edge_collector_")
        assert rejected == [(1, "metric name 'edge_collector_x' is reserved for the collector's own metrics")]

    def test_the_same_declaration_twice_is_fine(self) -> None:
        """Repeating an identical HELP or TYPE (two loops printing the header) is no conflict."""
        metadata, rejected = self.declared("# TYPE x gauge\n# TYPE x gauge\nx=1\n")
        assert rejected == [] and metadata == {"edge_x": (None, "gauge")}

    def test_declarations_without_readings_export_nothing(self) -> None:
        """A HELP for a key the run did not print (a failed read) leaves no family behind."""
        metadata, rejected = self.declared("# HELP x t\n# TYPE x gauge\ny=1\n")
        assert metadata == {} and rejected == []
