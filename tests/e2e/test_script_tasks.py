"""A task defined in the script that enqueues it (`python script.py`): named after the
script's module so a worker that imports that module runs it; refused at decoration
when no worker could import it; and a worker's message for a `__main__.` job says why."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cli_harness import Cli, Jobs, StartWorker, write_module

SCRIPT = """
from supervisor import task


@task
def hello(name):
    return f"hello {name}"


if __name__ == "__main__":
    result = hello.delay("you")
    print(result.get(timeout=20))
"""


def run_script(cli: Cli, path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, *args, str(path)] if args != ("-c",) else
                          [sys.executable, "-c", path.read_text()], cwd=path.parent,
                          env=cli.env, capture_output=True, text=True, timeout=60)


def test_a_script_s_task_is_named_after_its_module_and_runs(
    cli: Cli, start_worker: StartWorker, tmp_path: Path,
) -> None:
    write_module(tmp_path, "hello_script", SCRIPT)
    worker = start_worker(tasks="hello_script", queues="default", cwd=tmp_path)
    done = run_script(cli, tmp_path / "hello_script.py")
    assert (done.returncode, done.stdout) == (0, "hello you\n"), done.stderr
    assert worker.stop() == 0
    assert "hello_script.hello" in worker.output()  # the worker's task list names it so


def test_a_task_no_worker_could_import_is_refused_at_decoration(cli: Cli,
                                                                tmp_path: Path) -> None:
    write_module(tmp_path, "my-script", SCRIPT)  # not a module name
    (tmp_path / "inline.py").write_text(SCRIPT)
    for done in (run_script(cli, tmp_path / "my-script.py"),
                 run_script(cli, tmp_path / "inline.py", "-c")):
        assert done.returncode == 1
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("ValueError: task hello is defined in "), done.stderr
        assert "--tasks" in last and "define it in a module" in last


def test_a_main_job_is_dead_lettered_with_the_right_hint(
    cli: Cli, jobs: Jobs, start_worker: StartWorker,
) -> None:
    worker = start_worker(queues="default")
    job = jobs.add("__main__.hello", "you")
    jobs.settle(job)
    assert worker.stop() == 0
    [letter] = cli.json("dead", "list")
    assert "script run directly" in letter["message"] and "check --tasks" not in letter["message"]
