"""Foundations every stage uses: errors, files, the state folder, logging, processes, progress, images, the MLflow store."""
