"""The loop on one machine: the local run, its console and terminal, its run page, records and locks, the container runner."""
