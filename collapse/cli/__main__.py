"""`python -m collapse.cli ...`: the `collapse` command without its console script."""

import sys

from collapse.cli import main

sys.exit(main())
