"""`python -m tools.bench [NAME ...]`: run the benchmarks."""

import sys

from tools.bench.main import main

sys.exit(main())
