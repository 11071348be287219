from __future__ import annotations

import math

from prometheus_client.parser import text_string_to_metric_families

from edge_metrics.merge import reject_conflicts, script_families, type_changes
from edge_metrics.render import format_value, header, render, stamp_lines
from edge_metrics.samples import Family, Metadata, Sample


class TestRender:
    def test_exposition_is_sorted_and_has_one_help_per_family(self) -> None:
        """Families sorted by name, series by labels, one HELP and TYPE each, no timestamps."""
        text = render(
            [
                Family(
                    "edge_b",
                    "B.",
                    "gauge",
                    (Sample("edge_b", (("z", "2"),), 2.0), Sample("edge_b", (("z", "1"),), 1.0)),
                ),
                Family("edge_a", "A.", "counter", (Sample("edge_a", (), 0.5),)),
            ]
        )
        assert text == (
            "# HELP edge_a A.\n# TYPE edge_a counter\nedge_a 0.5\n"
            '# HELP edge_b B.\n# TYPE edge_b gauge\nedge_b{z="1"} 1\nedge_b{z="2"} 2\n'
        )

    def test_labels_are_sorted_and_escaped(self) -> None:
        """Label values with quotes, backslashes and newlines survive a round trip through Prometheus' parser."""
        value = 'a"b\\c\nd'
        text = render([Family("edge_t", "T.", "gauge", (Sample("edge_t", (("zone", value), ("a", "x")), 1.0),))])
        assert 'edge_t{a="x",zone="a\\"b\\\\c\\nd"} 1' in text
        (family,) = text_string_to_metric_families(text)
        assert family.samples[0].labels == {"a": "x", "zone": value}

    def test_special_values(self) -> None:
        """NaN and infinities use Prometheus' spelling; integers print without a fraction."""
        assert [format_value(v) for v in (math.nan, math.inf, -math.inf, 42.0, -3.5, 1e-3, 1e20)] == [
            "NaN", "+Inf", "-Inf", "42", "-3.5", "0.001", "1e+20"
        ]

    def test_empty_family_is_left_out(self) -> None:
        """A family with no samples writes no HELP/TYPE lines."""
        assert render([Family("edge_x", "X.", "gauge", ())]) == ""


class TestLines:
    def test_header_escapes_help_and_leaves_out_what_is_not_declared(self) -> None:
        """HELP text escaped as the exposition format reads it; a HELP or TYPE not declared is not written."""
        assert header("edge_t", "a\\b\nc", "gauge") == "# HELP edge_t a\\\\b\\nc\n# TYPE edge_t gauge"
        assert header("edge_t", None, "counter") == "# TYPE edge_t counter"
        assert header("edge_t", "Help.", None) == "# HELP edge_t Help."

    def test_stamp_goes_on_series_lines_only(self) -> None:
        """A header on the first line, headers in a row, and `#` inside a label value (also after an escaped
        newline): only the series lines get the timestamp."""
        lines = (b"# HELP edge_a A.\n# TYPE edge_a gauge\nedge_a 1\n"
                 b'edge_b{v="x#y"} 2\nedge_c{v="l1\\n#l2"} 3\n# TYPE edge_d counter\nedge_d 4\n')
        assert stamp_lines(lines, 1_800_000_000_123) == (
            b"# HELP edge_a A.\n# TYPE edge_a gauge\nedge_a 1 1800000000123\n"
            b'edge_b{v="x#y"} 2 1800000000123\nedge_c{v="l1\\n#l2"} 3 1800000000123\n'
            b"# TYPE edge_d counter\nedge_d 4 1800000000123\n"
        )
        assert stamp_lines(b"edge_a 1\nedge_b 2\n", 1_800_000_000_123) == (
            b"edge_a 1 1800000000123\nedge_b 2 1800000000123\n")
        assert stamp_lines(b"", 1_800_000_000_123) == b""


class TestMerge:
    def test_second_script_cannot_take_over_a_series(self) -> None:
        """Two scripts printing the same series: the one already exporting it keeps it, the other line is rejected."""
        mine = (Sample("edge_t", (), 1), Sample("edge_h", (), 2))
        kept, rejected = reject_conflicts("b", mine, {"a": (Sample("edge_t", (), 5),), "b": ()})
        assert kept == (Sample("edge_h", (), 2),)
        assert [r.reason for r in rejected] == ["series already exported by script 'a'"]

    def test_label_names_must_match_across_scripts(self) -> None:
        """A family spread over scripts keeps one set of label names."""
        others = {"a": (Sample("edge_t", (("zone", "cpu"),), 5),)}
        kept, rejected = reject_conflicts(
            "b", (Sample("edge_t", (("zone", "gpu"),), 1), Sample("edge_t", (("x", "1"),), 1)), others
        )
        assert kept == (Sample("edge_t", (("zone", "gpu"),), 1),)
        assert len(rejected) == 1 and "label names differ" in rejected[0].reason

    def test_families_group_scripts(self) -> None:
        """Samples of one name from several scripts form one family; parsed back it is one family."""
        families = script_families(
            {"a": (Sample("edge_t", (("zone", "cpu"),), 1),), "b": (Sample("edge_t", (("zone", "gpu"),), 2),)}
        )
        assert len(families) == 1 and len(families[0].samples) == 2
        parsed = list(text_string_to_metric_families(render(families)))
        assert [(f.name, f.type, len(f.samples)) for f in parsed] == [("edge_t", "gauge", 2)]


class TestDeclaredMetadata:
    def test_declared_help_and_type_are_exported(self) -> None:
        """A script's HELP and TYPE replace the generic ones; an undeclared key stays a gauge with the generic help;
        prometheus_client reads the result back with the same types and help."""
        declared = {"edge_reads_total": Metadata("edge_reads_total", "Reads (count).", "counter"),
                    "edge_t_celsius": Metadata("edge_t_celsius", "Temperature in degrees Celsius (°C).", None)}
        families = script_families(
            {"s": (Sample("edge_reads_total", (), 3), Sample("edge_t_celsius", (), 21.5), Sample("edge_x", (), 1))},
            {"s": declared},
        )
        parsed = {f.name: (f.type, f.documentation) for f in text_string_to_metric_families(render(families))}
        assert parsed == {"edge_reads": ("counter", "Reads (count)."),
                          "edge_t_celsius": ("gauge", "Temperature in degrees Celsius (°C)."),
                          "edge_x": ("gauge", "Reading printed by collector script s.")}

    def test_a_family_keeps_its_owners_type(self) -> None:
        """Another script exporting the family with another TYPE or HELP is refused, naming the owner."""
        others = {"a": (Sample("edge_t", (("zone", "cpu"),), 5),)}
        theirs = {"a": {"edge_t": Metadata("edge_t", "Temperature.", "gauge")}}
        sample = Sample("edge_t", (("zone", "gpu"),), 1)
        for mine, reason in [
            (Metadata("edge_t", None, "counter"), "TYPE counter differs from the gauge script 'a' declares"),
            (Metadata("edge_t", "Other.", None), "HELP differs from the one script 'a' declares"),
        ]:
            kept, rejected = reject_conflicts("b", (sample,), others, metadata={"edge_t": mine},
                                              others_metadata=theirs)
            assert kept == () and [r.reason for r in rejected] == [reason]
        gauge = {"edge_t": Metadata("edge_t", None, "gauge")}
        kept, rejected = reject_conflicts("b", (sample,), others, metadata=gauge, others_metadata=theirs)
        assert kept == (sample,) and rejected == []

    def test_type_changes_between_runs(self) -> None:
        """A family exported by two runs in a row whose TYPE changed is reported; a new or gone family is not."""
        before = (Sample("edge_a", (), 1), Sample("edge_b", (), 1))
        now = (Sample("edge_a", (), 2), Sample("edge_c", (), 1))
        counter = {"edge_a": Metadata("edge_a", None, "counter"), "edge_b": Metadata("edge_b", None, "counter")}
        assert type_changes(before, {}, now, counter) == [("edge_a", "gauge", "counter")]
        assert type_changes(before, counter, now, {}) == [("edge_a", "counter", "gauge")]
        assert type_changes(before, counter, now, counter) == []
