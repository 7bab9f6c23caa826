"""`python -m loopline.serving`: the model server (the serving image's entry point, the local smoke test's server)."""

from loopline.serving.server import serve_main

serve_main()
