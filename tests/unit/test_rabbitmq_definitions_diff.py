"""The rabbitmq role changes only the users and policies that differ from the cluster.

The role reads the cluster's definitions in one `rabbitmqctl export_definitions` call and runs
its modules only for the entries of rabbitmq_users and rabbitmq_policies that differ. These
cases run the role's own expressions (tests/unit/rabbitmq-definitions-diff.yml, on the control
node) against definitions shaped like RabbitMQ's export: whatever differs is named, so a run puts
back a hand-made change; what matches is not, so a warm run calls no module.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from cluster_runs import playbook

HERE = Path(__file__).resolve().parent

USERS: list[dict[str, Any]] = [
    {"name": "admin", "password": "x" * 16, "tags": ["administrator"], "permissions": []},
    {
        "name": "kitapp",
        "password": "y" * 16,
        "tags": [],
        "permissions": [
            {"vhost": "kitapp", "configure_priv": ".*", "write_priv": ".*", "read_priv": ".*"}
        ],
    },
    {"name": "olduser", "state": "absent"},
]
POLICIES: list[dict[str, Any]] = [
    {
        "name": "kitapp-queues",
        "vhost": "kitapp",
        "pattern": ".*",
        "apply_to": "queues",
        "tags": {"max-length": 3000, "overflow": "reject-publish"},
    },
    {
        "name": "kitapp-task-queues",
        "vhost": "kitapp",
        "pattern": "^(kitapp)$",
        "apply_to": "queues",
        "priority": 1,
        "tags": {"max-length": 3000, "delivery-limit": 20},
    },
    {
        "name": "kitapp-delivery-limit",
        "vhost": "kitapp",
        "pattern": ".*",
        "tags": {},
        "state": "absent",
    },
]
# What `rabbitmqctl export_definitions` gives for a cluster the variables above describe.
IN_SYNC: dict[str, Any] = {
    "users": [
        {"name": "admin", "password_hash": "h", "tags": ["administrator"], "limits": {}},
        {"name": "kitapp", "password_hash": "h", "tags": [], "limits": {}},
    ],
    "vhosts": [{"name": "/"}, {"name": "kitapp"}],
    "permissions": [
        {"user": "admin", "vhost": "/", "configure": "^$", "write": "^$", "read": "^$"},
        {"user": "kitapp", "vhost": "kitapp", "configure": ".*", "write": ".*", "read": ".*"},
    ],
    "topic_permissions": [],
    "policies": [
        {
            "vhost": "kitapp",
            "name": "kitapp-queues",
            "pattern": ".*",
            "apply-to": "queues",
            "definition": {"max-length": 3000, "overflow": "reject-publish"},
            "priority": 0,
        },
        {
            "vhost": "kitapp",
            "name": "kitapp-task-queues",
            "pattern": "^(kitapp)$",
            "apply-to": "queues",
            "definition": {"delivery-limit": 20, "max-length": 3000},
            "priority": 1,
        },
    ],
}


def changed(**edits: Any) -> dict[str, Any]:
    """IN_SYNC with each named path (user_tags, permission, ...) edited as a hand change would."""
    defined = copy.deepcopy(IN_SYNC)
    for what, value in edits.items():
        if what == "admin_tags":
            defined["users"][0]["tags"] = value
        elif what == "kitapp_write":
            defined["permissions"][1]["write"] = value
        elif what == "drop_user":
            defined["users"] = [u for u in defined["users"] if u["name"] != value]
        elif what == "add_user":
            defined["users"].append({"name": value, "password_hash": "h", "tags": []})
        elif what == "topic_permission":
            defined["topic_permissions"].append({"user": value, "vhost": "kitapp"})
        elif what == "queues_max_length":
            defined["policies"][0]["definition"]["max-length"] = value
        elif what == "task_queues_priority":
            defined["policies"][1]["priority"] = value
        elif what == "task_queues_pattern":
            defined["policies"][1]["pattern"] = value
        elif what == "drop_policy":
            defined["policies"] = [p for p in defined["policies"] if p["name"] != value]
        elif what == "add_policy":
            defined["policies"].append({**defined["policies"][0], "name": value})
    return defined


CASES: dict[str, tuple[dict[str, Any], list[str], list[str]]] = {
    # name: (definitions, users expected to differ, policies expected to differ)
    "in_sync": (IN_SYNC, [], []),
    "tags_as_a_string_as_rabbitmq_3_10_exports_them": (
        changed(admin_tags="administrator"),
        [],
        [],
    ),
    "admin_lost_its_tag": (changed(admin_tags=[]), ["admin"], []),
    "app_user_cannot_write": (changed(kitapp_write="^$"), ["kitapp"], []),
    "app_user_missing": (changed(drop_user="kitapp"), ["kitapp"], []),
    "user_to_remove_still_there": (changed(add_user="olduser"), ["olduser"], []),
    "topic_permission_added_by_hand": (changed(topic_permission="kitapp"), ["kitapp"], []),
    "queue_limit_changed_by_hand": (changed(queues_max_length=10), [], ["kitapp-queues"]),
    "policy_priority_changed": (changed(task_queues_priority=0), [], ["kitapp-task-queues"]),
    "policy_pattern_changed": (changed(task_queues_pattern=".*"), [], ["kitapp-task-queues"]),
    "policy_missing": (changed(drop_policy="kitapp-queues"), [], ["kitapp-queues"]),
    "policy_to_remove_still_there": (
        changed(add_policy="kitapp-delivery-limit"),
        [],
        ["kitapp-delivery-limit"],
    ),
}


@pytest.fixture(scope="module")
def differing(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, list[str]]]:
    folder = tmp_path_factory.mktemp("definitions")
    cases = folder / "cases.json"
    cases.write_text(
        json.dumps(
            {
                "cases": [
                    {"name": name, "users": USERS, "policies": POLICIES, "defined": defined}
                    for name, (defined, _, _) in CASES.items()
                ]
            }
        )
    )
    out = folder / "out.json"
    playbook(
        "localhost,",
        str(HERE / "rabbitmq-definitions-diff.yml"),
        "-c",
        "local",
        "-e",
        "ansible_python_interpreter={{ ansible_playbook_python }}",
        "-e",
        f"@{cases}",
        "-e",
        f"out={out}",
    )
    return {row["case"]: row for row in json.loads(out.read_text())}


@pytest.mark.parametrize("case", list(CASES))
def test_only_what_differs_from_the_cluster_is_applied(differing, case: str) -> None:
    _, users, policies = CASES[case]
    assert differing[case]["users"] == users
    assert differing[case]["policies"] == policies
