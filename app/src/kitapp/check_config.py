"""``kitapp-check-config``: validate the environment and print the redacted settings."""

from __future__ import annotations

import json
import sys

from kitapp.config import ConfigError, Settings, load_settings


def settings_or_none() -> Settings | None:
    """The settings, or None after printing what is wrong (for console scripts: exit 2)."""
    try:
        return load_settings()
    except ConfigError as exc:
        print(f"kitapp configuration error: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    settings = settings_or_none()
    if settings is None:
        return 2
    print(json.dumps(settings.redacted(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
