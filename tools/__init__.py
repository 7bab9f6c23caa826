"""Loopline's development tools, run from the repository and never installed: the benchmarks,
the component README generator and the rehearsal of the cluster's data path."""
