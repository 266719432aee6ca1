"""A code-declared every-second schedule, for the several-nodes test."""

from __future__ import annotations

from datetime import timedelta

from periodic_tasks import recorder

from supervisor import TaskContext, periodic, task


# catch_up="all": a tick is never skipped while any node runs, so the test can
# demand every tick between the first and the last, each exactly once.
@periodic(every=timedelta(seconds=1), catch_up="all")
@task(bind=True)
def beat(self: TaskContext) -> None:
    recorder().rpush("t:beats", self.request.id)
