"""edge-metrics-collector: bash sensor scripts -> Prometheus gauges in node_exporter's textfile directory."""

__version__ = "0.1.0"
