"""`python -m loopline.cli`: the `loopline` command."""

import sys

from loopline.cli.app import main

sys.exit(main())
