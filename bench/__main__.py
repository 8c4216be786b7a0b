"""`python -m bench fanout|join ...`: the same as `golive bench ...`."""

import sys

from bench.cli import main

sys.exit(main())
