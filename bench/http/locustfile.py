"""Locust users for bench/http/run.py: 16 clients, no think time, one endpoint per run.

BENCH_MODE picks the endpoint (decision, same_writes, one_row); BENCH_POOL is the JSON the run
wrote: decisions (approval id + its approver's token, each used once) and per-client targets.
"""

from __future__ import annotations

import itertools
import json
import os

import gevent
from locust import FastHttpUser, constant, task
from locust.exception import StopUser
from locust.stats import CSV_STATS_INTERVAL_SEC

MODE = os.environ["BENCH_MODE"]
with open(os.environ["BENCH_POOL"]) as f:
    POOL = json.load(f)
_decisions = iter(POOL["decisions"])
_slots = itertools.count()
_stopped = itertools.count(1)


class Client(FastHttpUser):
    wait_time = constant(0)

    def on_start(self) -> None:
        slot = next(_slots)
        self.target = POOL["targets"][slot % len(POOL["targets"])]

    @task
    def hit(self) -> None:
        if MODE == "decision":
            job = next(_decisions, None)
            if job is None:
                # Every deciding approval is used. The last user to notice ends the run, so no
                # request in flight is cut off (and lost from the figures), and only after the
                # CSV writer's next pass (it writes once a second): quitting at once lost up to
                # the last second's requests from the stats file.
                if next(_stopped) == self.environment.parsed_options.num_users:
                    gevent.spawn_later(CSV_STATS_INTERVAL_SEC + 0.5, self.environment.runner.quit)
                raise StopUser
            self._post(
                f"/api/v1/approvals/{job['approval']}/decision/",
                {"decision": "approve", "comment": "bench"},
                {"Authorization": f"Token {job['token']}"},
                "decision",
            )
        elif MODE == "same_writes":
            self._post("/bench/same-writes/", self.target, {}, "same_writes")
        else:
            self._post(f"/bench/one-row/{self.target['unit']}/", {}, {}, "one_row")

    def _post(self, url: str, body: dict, headers: dict, name: str) -> None:
        with self.client.post(
            url, json=body, headers=headers, name=name, catch_response=True
        ) as response:
            if response.status_code != 200:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
