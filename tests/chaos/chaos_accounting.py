"""The final accounting of a chaos run: lost jobs, duplicates and who explains them.

Attribution rule (a duplicate with no explanation fails the run). Let a job's
executions be e1, e2, ... in start order. Each ek followed by e(k+1) must be
explained by a kill event K of one of these kinds, with
`ek.start <= K.after` (the victim was running ek when the kill landed, or
ek's outcome was not yet settled) and `K.before <= e(k+1).start` (the kill
came before the job ran again):

- `child_kill` of the very process that ran ek (same node and pid);
- `node_kill` (killpg of the whole node) or `partition` of ek's node;
- `master_kill`: the node's master killed that process itself (a hung
  child or an overdue stop, read from the master's log; reported apart);
- `redis_kill`: the broker died or failed over (a heartbeat may lapse while
  it is down, so another node may take the job over; a failover loses the
  writes the old master took last, fetches included). The victim here is a
  job *taken* before the fault ended, and a job starts after its take: a
  worker holds a fetched batch, so a job taken from the old master just
  before the switch may start TAKEN_TO_START later (seen: 1.3 s, behind a
  slow job of the same batch, then settled on the new master as "no longer
  ours" and run again there). For this kind the window is widened by that
  bound.

- `producer_retry` of that very job (the harness's producer enqueues it again
  under the same id after a refused write, chaos_producer): the dedup window
  of an enqueue is the job's record's life, so once the job ran and its record
  expired (`result_ttl`, 10 s here) the same id is a new job (seen: replicas
  resyncing after two failovers in a row refused the WAIT for 13 s).

Graceful paths (TERM, HUP, TTIN, TTOU) explain nothing: they must never
run a job twice. A job is lost when it was confirmed enqueued and no
execution of it finished its work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chaos_events import KILLS, Event
from chaos_ledger import Execution
from chaos_producer import SLOWEST_MS

from supervisor.worker.sizing import HOLD_TARGET

# The longest a taken job waits in its worker's hand before it starts: behind
# the slowest chaos job of its batch, and the two HOLD_TARGETs a batch may run
# over before what waits behind the next job is handed back (worker/loop.py).
TAKEN_TO_START = SLOWEST_MS / 1000 + 2 * HOLD_TARGET + 0.3  # + scheduling on a loaded box


@dataclass(frozen=True, slots=True)
class Unexplained:
    job_id: str
    earlier: Execution
    later: Execution


@dataclass
class Accounting:
    enqueued: int = 0
    executed: int = 0  # at least once
    lost: list[str] = field(default_factory=list)
    duplicated: dict[str, list[Execution]] = field(default_factory=dict)
    explained_by: dict[str, list[str]] = field(default_factory=dict)  # job id -> event kinds
    unexplained: list[Unexplained] = field(default_factory=list)

    @property
    def extra_runs(self) -> int:
        return sum(len(runs) - 1 for runs in self.duplicated.values())


def explains(event: Event, earlier: Execution, later: Execution) -> bool:
    if event.kind == "producer_retry":
        return event.detail.startswith(f"{earlier.job_id}:") and event.before <= later.start
    if event.kind not in KILLS:
        return False
    if event.kind == "redis_kill":
        return earlier.start <= event.after + TAKEN_TO_START and event.before <= later.start
    if not (earlier.start <= event.after and event.before <= later.start):
        return False
    if event.kind in ("node_kill", "partition"):
        return event.node == earlier.node
    return event.node == earlier.node and event.pid == earlier.pid


def account(confirmed: list[str], runs: dict[str, list[Execution]],
            events: list[Event]) -> Accounting:
    result = Accounting(enqueued=len(confirmed))
    kills = [event for event in events if event.kind in KILLS or event.kind == "producer_retry"]
    for job_id in confirmed:
        executions = runs.get(job_id, [])
        if executions:
            result.executed += 1
        if not any(e.end is not None for e in executions):
            result.lost.append(job_id)
        if len(executions) < 2:
            continue
        result.duplicated[job_id] = executions
        for earlier, later in zip(executions, executions[1:], strict=False):
            why = [k.kind for k in kills if explains(k, earlier, later)]
            if why:
                result.explained_by.setdefault(job_id, []).append(why[0])
            else:
                result.unexplained.append(Unexplained(job_id, earlier, later))
    return result


def ran_again(event: Event, runs: dict[str, list[Execution]]) -> float | None:
    """Seconds from a kill until every job its victims held started again (None: none did)."""
    worst: float | None = None
    for job_id in set(event.held):
        later = [e.start for e in runs.get(job_id, []) if e.start > event.after]
        if later:
            delay = min(later) - event.after
            worst = delay if worst is None else max(worst, delay)
    return worst


def recovery_table(events: list[Event], runs: dict[str, list[Execution]]) -> list[str]:
    """Faults by kind: how many, jobs held, worst time back in the queue and worst rerun."""
    kinds = ["child_kill", "node_kill", "redis_kill", "term_restart", "hup", "ttin", "ttou",
             "partition", "master_kill"]
    lines = [f"{'fault':<13} {'injected':>8} {'held jobs':>9} {'worst recovery':>15} "
             f"{'worst rerun':>12}  recovery means"]
    meaning = {"child_kill": "its jobs back in the queue", "node_kill":
               "its jobs taken by another node", "partition": "its jobs taken by another node",
               "redis_kill": "a job settled again"}
    for kind in kinds:
        of_kind = [event for event in events if event.kind == kind]
        if not of_kind and kind in ("partition", "master_kill"):
            continue
        held = sum(len(event.held) for event in of_kind)
        recoveries = [event.recovery for event in of_kind if event.recovery is not None]
        reruns = [r for r in (ran_again(event, runs) for event in of_kind) if r is not None]
        worst = f"{max(recoveries):.2f}s" if recoveries else "-"
        rerun = f"{max(reruns):.2f}s" if reruns else "-"
        lines.append(f"{kind:<13} {len(of_kind):>8} {held:>9} {worst:>15} {rerun:>12}  "
                     f"{meaning.get(kind, '-')}")
    return lines
