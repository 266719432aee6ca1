"""Node liveness per queue: heartbeats on each queue's shard, checked inside the claim.

Against a real redis-server: the heartbeat keys a beat writes, how liveness
reads them (older nodes with the global key only count as alive), and the
claim script refusing to take entries of a node whose heartbeat on the
queue exists, however the caller judged it.
"""

from __future__ import annotations

import redis

from supervisor.broker import keys, nodes
from supervisor.broker.connection import connect
from supervisor.broker.streams import Broker


def _held_by(client: redis.Redis, queue: str, consumer: str, count: int) -> None:
    """`consumer` reads `count` entries of `queue` (they are pending for it)."""
    stream = keys.stream(queue)
    client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    for n in range(count):
        client.xadd(stream, {keys.MESSAGE_FIELD: f'{{"id": "j{n}"}}'})
    client.xreadgroup(keys.GROUP, consumer, {stream: ">"}, count=count)


def test_a_beat_refreshes_one_heartbeat_per_queue_and_the_global_one(redis_url: str) -> None:
    client = connect(redis_url)
    nodes.beat(client, "node-a", 3.0, ["alpha", "beta"])
    for name in (keys.node("node-a"), keys.queue_node("alpha", "node-a"),
                 keys.queue_node("beta", "node-a")):
        assert 0 < client.pttl(name) <= 3000, name
    assert keys.queue_node("alpha", "node-a").startswith(keys.PREFIX + ":{alpha}:")
    client.pexpire(keys.queue_node("alpha", "node-a"), 100_000)
    nodes.beat(client, "node-a", 3.0, ["alpha", "beta"])  # refreshed, not kept
    assert client.pttl(keys.queue_node("alpha", "node-a")) <= 3000


def test_liveness_on_a_queue_reads_that_queues_heartbeat(redis_url: str) -> None:
    client = connect(redis_url)
    nodes.beat(client, "node-a", 5.0, ["alpha"])
    nodes.beat(client, "node-b", 5.0, ["beta"])
    # node-a no longer serves beta (restarted with other queues): its consumers left
    # there are dead, though the node lives.
    assert nodes.live_nodes(client, {"node-a", "node-b"}, "alpha") == {"node-a"}
    assert nodes.live_nodes(client, {"node-a", "node-b"}, "beta") == {"node-b"}
    client.delete(keys.node("node-b"))  # the global key is not what a queue reads
    assert nodes.live_nodes(client, {"node-a", "node-b"}, "beta") == {"node-b"}
    # A node of a version before the per-queue heartbeats beats the global key only.
    client.set(keys.node("old-node"), '{"host": "h", "at": 1}', px=5000)
    assert nodes.live_nodes(client, {"old-node", "gone"}, "alpha") == {"old-node"}
    assert nodes.live_nodes(client, {"node-a", "node-b", "old-node"}) == {"node-a", "old-node"}


def test_the_claim_takes_nothing_from_a_node_whose_queue_heartbeat_exists(
        redis_url: str) -> None:
    client = connect(redis_url)
    broker = Broker(client)
    dead = "node-a/123/1.00"
    _held_by(client, "alpha", dead, 3)
    nodes.beat(client, "node-a", 5.0, ["alpha"])
    # However the caller judged it (a beat came in after its check): nothing taken.
    assert broker.claim_dead("alpha", dead, "node-b/1/1.00", node="node-a") == []
    assert client.xpending(keys.stream("alpha"), keys.GROUP)["consumers"] == [
        {"name": dead, "pending": 3}]
    # Its heartbeat of another queue does not protect this queue's entries.
    client.delete(keys.queue_node("alpha", "node-a"))
    nodes.beat(client, "node-a", 5.0, ["beta"])
    claimed = broker.claim_dead("alpha", dead, "node-b/1/1.00", node="node-a")
    assert len(claimed) == 3
    consumers = client.xpending(keys.stream("alpha"), keys.GROUP)["consumers"]
    assert consumers == [{"name": "node-b/1/1.00", "pending": 3}]


def test_a_local_claim_needs_no_heartbeat_check(redis_url: str) -> None:
    """A dead process of the caller's own node: its node beats (the caller is on it)."""
    client = connect(redis_url)
    broker = Broker(client)
    _held_by(client, "alpha", "node-a/123/1.00", 2)
    nodes.beat(client, "node-a", 5.0, ["alpha"])
    assert len(broker.claim_dead("alpha", "node-a/123/1.00", "node-a/456/1.00")) == 2
