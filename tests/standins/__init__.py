"""Stand-ins for the APIs that cannot run here (KFP API server, Vertex AI API).

Each is a small HTTP server on 127.0.0.1 that records every request and answers the minimal JSON
the real clients (`kfp.Client`, `google-cloud-aiplatform`) need. Tests drive the real clients
against them and assert on the recorded requests.
"""
