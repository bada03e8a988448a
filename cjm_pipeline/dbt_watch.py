"""The DAG's dbt tasks: one `dbt build` watched node by node, each node with its tests.

Cosmos' watcher mode runs the night's one `dbt build` in a producer task and gives each
seed and model a task that waits (in the triggerer) for dbt's result for its node. Its
tests would be one more task per tested node, about 60 more task instances a night, and
on this scale a task instance costs more than most models. Here a node's task waits for
the node and then for the aggregated result of its tests, which the producer collects
as they finish: the task fails when a test of its node fails, naming the node, and the
nodes built on it never start, as `dbt build` skips them.

Only the DAG file imports this module (it imports Cosmos).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from airflow.sdk.exceptions import AirflowException, AirflowRescheduleException
from cosmos.listeners.dag_run_listener import EventStatus
from cosmos.operators._watcher.aggregation import get_tests_status_xcom_key
from cosmos.operators._watcher.state import (
    get_status_xcom_key,
    get_xcom_val,
    is_dbt_node_status_success,
)
from cosmos.operators.watcher import DbtRunWatcherOperator, DbtSeedWatcherOperator

# A node's task starts when the tasks of its parents have ended, which is about when dbt
# reaches the node: it waits in its own process this long for the node's result (and
# its tests') before it hands the wait to the triggerer. Each hand-over ends the task's
# process and starts another when the trigger fires, which costs more than the wait.
WAIT_IN_PLACE_SECONDS = 30.0
POLL_SECONDS = 0.5
# A node task that finds the producer not started yet asks to be run again this much
# later, freeing its slot (and, in `airflow dags test`, which runs one task at a time,
# letting the producer run first).
NOT_STARTED_SECONDS = 3
NOT_STARTED = {None, "none", "scheduled", "queued"}


class _WithTests:
    """Mixed into a Cosmos node watcher: its node first, then its tests.

    Cosmos' watcher reads the tests' aggregated result instead of the node's when
    ``is_test_sensor`` is true (the XCom key it polls, in the task and in the trigger);
    here it turns true once the node has succeeded and the node has tests.
    """

    tested: bool = False  # set per task by tested_nodes()
    _node_done: bool = False
    # On a retry or a clear the task runs its node itself (Cosmos' fallback): with
    # `dbt build`, so its tests run too and a failed test is not passed by a rebuild.
    base_cmd: ClassVar[list[str]] = ["build"]

    @property
    def is_test_sensor(self) -> bool:
        return self._node_done

    @property
    def _resource_label(self) -> str:
        return "Tests of" if self._node_done else "Node"

    def poke(self, context: Any) -> bool:
        if not self._node_done:
            if not super().poke(context):  # raises when the node failed or was skipped
                return False
            if not self.tested:
                return True
            self._node_done = True
        return super().poke(context)  # the tests' "pass" or "fail" (which raises)

    def _node_result(self, ti: Any) -> dict | None:
        """What the producer reported for this task's node (None: nothing yet)."""
        return get_xcom_val(ti, self.producer_task_id, get_status_xcom_key(self.model_unique_id))

    def _reported(self, ti: Any) -> bool:
        """Whether the producer has reported what this task waits for."""
        node = self._node_result(ti)
        if node is None:
            return False
        if not self.tested or not is_dbt_node_status_success(node.get("status")):
            return True
        key = get_tests_status_xcom_key(self.model_unique_id)
        return get_xcom_val(ti, self.producer_task_id, key) is not None

    def _execute_core(self, context: Any) -> None:
        ti = context["ti"]
        if ti.try_number == 1 and self._get_producer_task_status(context) in NOT_STARTED:
            raise AirflowRescheduleException(
                datetime.now(UTC) + timedelta(seconds=NOT_STARTED_SECONDS)
            )
        if self.deferrable and ti.try_number == 1:
            deadline = time.monotonic() + WAIT_IN_PLACE_SECONDS
            while not self._reported(ti) and time.monotonic() < deadline:
                time.sleep(POLL_SECONDS)
        super()._execute_core(context)  # pokes: done, failed, or deferred to the triggerer

    def _fallback_to_non_watcher_run(self, try_number: int, context: Any) -> bool:
        # Cosmos builds the node in the task's first try when the producer failed
        # before reaching it. A build here needs the night lock, which the task takes on
        # a retry or a clear (fallback_task_starts): so not in the first try.
        if try_number == 1:
            raise AirflowException(
                f"the night's dbt build ({self.producer_task_id}) ended before it reached "
                f"{self.model_unique_id}: see its log; a retry builds the node on its own"
            )
        return super()._fallback_to_non_watcher_run(try_number, context)

    def execute_complete(self, context: Any, event: dict[str, Any]) -> None:
        # Resumed from the trigger, in a new process: the event is the node's, or its
        # tests' when the task deferred a second time to wait for them. Which one it
        # is, the node's own result says.
        node = self._node_result(context["ti"])
        self._node_done = bool(
            self.tested and node and is_dbt_node_status_success(node.get("status"))
        )
        super().execute_complete(context, event)  # raises on a failure
        if self._node_done and event.get("status") == EventStatus.SUCCESS:
            self._execute_core(context)  # the tests' result, or defer until they report


class RunWithTests(_WithTests, DbtRunWatcherOperator):
    pass


class SeedWithTests(_WithTests, DbtSeedWatcherOperator):
    pass


def tested_nodes(tasks: list, tests_per_model: dict[str, list[str]]) -> None:
    """Give Cosmos' model and seed watchers their tests (in place)."""
    for task in tasks:
        kind = {DbtRunWatcherOperator: RunWithTests, DbtSeedWatcherOperator: SeedWithTests}.get(
            type(task)
        )
        if kind is not None:
            task.__class__ = kind
            task.tested = bool(tests_per_model.get(task.model_unique_id))


def builds_tests(producer: Any) -> None:
    """The producer's `dbt build` runs the data tests too, as `cjm run` does (Cosmos
    leaves them out when no test task is rendered), and, as `cjm run` does, not the unit
    tests, which check the models' logic and run where the models change (CI)."""
    flags, kept = list(producer.dbt_cmd_flags or []), []
    while flags:
        flag = flags.pop(0)
        if flag == "--resource-type":
            flags.pop(0)
            continue
        kept.append(flag)
    producer.dbt_cmd_flags = [*kept, "--exclude-resource-type", "unit_test"]
