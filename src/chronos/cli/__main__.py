"""`python -m chronos.cli`, the same as the `chronos` command."""

import sys

from chronos.cli import main

sys.exit(main())
