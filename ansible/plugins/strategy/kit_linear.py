"""The kit's default strategy: Ansible's `linear`, run through Mitogen when it is installed.

Mitogen (pinned in requirements.txt) keeps one Python interpreter per host for the whole run and
sends modules to it over that one connection, instead of starting an interpreter and unpacking a
module per task; a warm site.yml takes about half the time. Without Mitogen (another control
node's virtualenv), the stock `linear` strategy runs, after a warning: the same tasks, slower.
`ANSIBLE_STRATEGY=linear` chooses the stock strategy explicitly.
"""

from __future__ import annotations

from ansible.plugins.loader import strategy_loader
from ansible.utils.display import Display

try:
    import ansible_mitogen.loaders  # noqa: F401  (Mitogen's plugin loaders, before its mixin)
    import ansible_mitogen.strategy
except ImportError:
    Display().warning(
        "mitogen is not installed in this control node's Python: site.yml runs with Ansible's "
        "stock linear strategy (slower). Install requirements.txt to get the kit's speed."
    )
    StrategyModule = strategy_loader.get("linear", class_only=True)
else:

    class StrategyModule(  # type: ignore[no-redef]
        ansible_mitogen.strategy.StrategyMixin,
        strategy_loader.get("linear", class_only=True),
    ):
        """Linear, with Mitogen's connections and module runner."""
