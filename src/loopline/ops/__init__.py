"""Operating the pipelines on a cluster: parameters and their domains, schedules, cluster settings, submission, drift-triggered reruns."""
