"""One worker process of the multi-worker test: ``python -m tests.lab.pg_worker DB_URL``.

It runs the lab engine on real time, claiming tasks from the shared database, until every
task there is finished, then prints how many tasks it started."""

from __future__ import annotations

import sys

from sqlalchemy import func, select

import tests.lab.probe as probe
from labos.lab import Lab
from labos.lab.engine import realtime_env
from labos.lab.records import TaskRow
from labos.lab.store import Store


def main(url: str) -> None:
    env = realtime_env()
    lab = Lab(probe.bench_config(), Store(url, migrate=False), {}, env=env, poll_s=0.1)

    def until_done():
        while True:
            yield env.timeout(0.25)
            with lab.store.factory() as s:
                left = s.scalar(select(func.count()).select_from(TaskRow).where(TaskRow.status != "done"))
            if not left:
                lab.engine.stop()
                return

    lab.process(until_done())
    lab.run()
    lab.close()
    import time

    cpu = time.process_time()
    print(
        f"STARTED {lab.engine.tasks_started} cpu {cpu:.1f} dispatches {lab.engine.dispatches} "
        f"dispatch_s {lab.engine.dispatch_s:.1f}",
        flush=True,
    )


if __name__ == "__main__":  # pragma: no cover - run as a subprocess
    main(sys.argv[1])
