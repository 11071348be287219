"""The real pipeline on loopback, started from the shipped files: central Prometheus <- the gate <- vmauth <-
vmagent (disk queue) <- node_exporter and the collector; Alertmanager beside the centre. The e2e tests
(tests/e2e), the fleet (bench/fleet), the dashboards' pictures (tests/grafana/pictures.py) and `make demo`
(testbed/demo.py) all start it through this package.

Every configuration comes from deploy/ as it is; only listen ports, data paths, credential paths and, where a
caller asks, the scrape interval are substituted (`override_flags` refuses a flag the shipped file does not set).
Each process is started through `Processes`, so its whole process group is killed at the end even when the
caller fails.

Secure as shipped (docs/security.md): tools/make-certs.sh makes a CA, the centre's certificate and the node
tokens in the caller's directory; the node writes over TLS with its bearer token to vmauth, and Prometheus
serves only TLS with basic auth (its --web.config.file). By default (`enforce_node=True`) the gate of
production (`edge-metrics gate`, deploy/vmauth/gate.flags) sits between vmauth and Prometheus, sets the node
and cluster labels from the credential and enforces the per-node limits of make-certs' gate-limits.conf: the
centre the manifests ship (tests/k8s/test_test_centre.py compares). A test that needs the node to see
Prometheus' own answers passes `enforce_node=False` (vmauth straight to Prometheus) with a
`# direct to Prometheus: <why>` comment on the line before (the same test checks there is one).

A package of its own beside tests/, bench/ and tools/ (not under tests/): the benchmarks and `make demo`
start the same stack, and a demo should not import the test suite. It is importable from the checkout's top
directory, where pytest, `python -m bench.fleet` and `python -m testbed.demo` all run.

One module per job, bottom up: paths, processes, poll, net, flags, exposition, certs, remote_write; then one per
component (prometheus, alertmanager, ingest, node, webhook), the centre and the pipeline that wire them,
counter and push for the e2e tests' script and push mode, and demo, `make demo`'s entry point. Import from the
module that holds a name: this file imports nothing, so a unit test that needs `wait_until` does not load the
whole pipeline.
"""
