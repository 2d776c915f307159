"""``python -m kitapp``: the same as ``kitapp-check-config``."""

from __future__ import annotations

import sys

from kitapp.check_config import main

sys.exit(main())
