"""Served traffic: KServe's logger format (records, objects, their keys), the capture a server writes where no KServe agent runs, the time window read back, and drift judged on it."""
