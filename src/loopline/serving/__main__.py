"""`python -m loopline.serving`: the model server (the serving image's entry point, the local smoke test's server)."""

import sys

from loopline.core.errors import DeploymentError
from loopline.serving.server import serve_main

try:
    serve_main()
except DeploymentError as exc:  # bad settings or an unreadable model: one line, exit 1
    print(f"loopline: error: {exc}", file=sys.stderr)
    sys.exit(1)
