"""A fleet of simulated edge nodes on one machine: each in its own network namespace, all sending to one
central store on the host side. `python -m bench.fleet --help`; the figures it prints are in docs/scale.md."""
