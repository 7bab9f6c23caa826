"""Tabular data: the dataset spec, reading files and URIs, the input checks, deterministic splits and the demo data."""
