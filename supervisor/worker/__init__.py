"""A worker: the child's boot, its loop, running jobs, recovery, the scheduler, its metrics."""
