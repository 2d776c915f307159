"""``kitapp-check-config``: validate the environment and print the redacted settings."""

from __future__ import annotations

import json
import sys

from kitapp.config import ConfigError, load_settings


def main(argv: list[str] | None = None) -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"kitapp configuration error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(settings.redacted(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
