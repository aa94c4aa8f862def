"""``python -m stream_scorer`` is the ``stream-scorer`` command."""

import sys

from stream_scorer.cli import main

sys.exit(main())
