"""A workflow's tree with each member's state: `supervisor job` of any member, the
dashboard's job page, and the workflow counts of `status`.

The tree is written once by the workflow's producer (keys.workflow, in the slot of its
first queue; api/canvas.py) and names every member; each member's record names the tree
(`workflow`: {id, queue}). States are read from the members' records.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from supervisor.broker import keys
from supervisor.core import jsonio
from supervisor.core.record import FAILED, SUCCEEDED, UNKNOWN
from supervisor.errors import AmbiguousJob

MAX_SHOWN = 1000  # members whose states are read (a group of 100,000 shows its first ones)


def tree_of(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tree kept for a workflow, from its step descriptions (core/canvas.py): a chain
    is a list of nodes, a node a task call {id, task, queue} or a group {group, members}."""
    nodes: list[dict[str, Any]] = []
    for step in steps:
        if "g" in step:
            nodes.append({"group": step["id"], "members": [tree_of(m) for m in step["g"]]})
        else:
            nodes.append({"id": step["id"], "task": step["t"], "queue": step["q"]})
    return nodes


def _calls(chain: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for node in chain:
        if "group" in node:
            for member in node["members"]:
                yield from _calls(member)
        else:
            yield node


def find_tree(client: Any, workflow_id: str, queue: str | None = None,
              ) -> tuple[str, str] | None:
    """(queue, root) of the workflow `workflow_id` names: its own id (a handle's
    `workflow_id`) or that of a group in it (a GroupResult's `.id`). Searches every known
    queue if none is given (one pipelined round trip); None when no queue has it."""
    queues: list[str] = [queue] if queue else sorted(client.smembers(keys.QUEUES))
    pipe = client.pipeline(transaction=False)
    for name in queues:
        pipe.exists(keys.workflow(name, workflow_id))
        pipe.get(keys.workflow_group(name, workflow_id))
    replies = pipe.execute()
    found = [(name, workflow_id if replies[2 * index] else replies[2 * index + 1])
             for index, name in enumerate(queues)
             if replies[2 * index] or replies[2 * index + 1]]
    if len(found) > 1:  # only an id reused on purpose gets here (roots are random)
        raise AmbiguousJob(f"workflow {workflow_id!r} exists in queues "
                           f"{', '.join(name for name, _ in found)}; pass --queue to say which")
    return (found[0][0], str(found[0][1])) if found else None


def read_tree(client: Any, workflow: dict[str, Any]) -> dict[str, Any] | None:
    """{id, queue, state, steps, members, counts} of the workflow a record names
    ({id, queue}), each task call with its state ('unknown': not made yet, or expired);
    the workflow's state is running, succeeded or failed (a branch stopped; 'unknown' for
    one made before it was counted). None when the tree is gone."""
    root, queue = workflow.get("id"), workflow.get("queue")
    if not root or not queue:
        return None
    raw = client.get(keys.workflow(str(queue), str(root)))
    if raw is None:
        return None
    steps = jsonio.loads(raw)
    calls = list(_calls(steps))
    shown = calls[:MAX_SHOWN]
    pipe = client.pipeline(transaction=False)
    pipe.hmget(keys.workflow_ends(str(queue), str(root)), "left", "failed")
    for call in shown:
        pipe.get(keys.job(call["queue"], call["id"]))
    (left, failed), *records = pipe.execute()
    counts: dict[str, int] = {}
    for call, written in zip(shown, records, strict=True):
        state = UNKNOWN
        if written:
            state = str(jsonio.loads(written).get("state", UNKNOWN))
        call["state"] = state
        counts[state] = counts.get(state, 0) + 1
    return {"id": root, "queue": queue, "state": _state(left, failed), "steps": steps,
            "members": len(calls), "counts": counts}


def _state(left: str | None, failed: str | None) -> str:
    if left is None:
        return UNKNOWN
    if int(left) > 0:
        return "running"
    return FAILED if failed else SUCCEEDED


def tree_lines(tree: dict[str, Any], current: str = "") -> list[str]:
    """The tree as indented text lines; `current` (the job asked about) is marked."""
    counts = ", ".join(f"{count} {state}" for state, count in sorted(tree["counts"].items()))
    lines = [f"workflow {tree['id']} {tree.get('state', UNKNOWN)}  "
             f"({tree['members']} members: {counts})"]

    def chain(nodes: list[dict[str, Any]], depth: int) -> None:
        pad = "  " * depth
        for node in nodes:
            if "group" in node:
                lines.append(f"{pad}group {node['group']}")
                for member in node["members"]:
                    chain(member, depth + 1)
            else:
                mark = "  <- this job" if node["id"] == current else ""
                lines.append(f"{pad}{node['task']} {node['id']} [{node['queue']}] "
                             f"{node.get('state', '?')}{mark}")

    chain(tree["steps"], 1)
    return lines
