"""The board's bill (`make bench-pod`): the edge pod of the DaemonSet, run as tests/k8s/podsim.py runs it, measured
per container at the shipped intervals, through an outage of the centre and its drain (docs/kubernetes.md)."""
