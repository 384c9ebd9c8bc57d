"""Progress end to end in one process: the real API (GET over its ASGI app) and the real worker on the moto
server. A running job shows its handler's progress, written at most once per interval however often it reports,
and the job keeps the last value when it ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from fastapi.testclient import TestClient

from runtime.adapters.dynamodb.access_store import DynamoDbAccessStore
from runtime.adapters.dynamodb.store import DynamoDbJobStore
from runtime.admin.access import AccessAdmin
from runtime.api.app import build_container, create_app
from runtime.domain.job import Progress
from runtime.domain.ports import UtcClock
from runtime.domain.progress import PROGRESS_INTERVAL_S
from runtime.worker.runner import Worker
from tests.adapters.resources import raw_client
from tests.worker.conftest import TENANT, WorkerEnv


class CountingStore(DynamoDbJobStore):
    """The real store, noting each progress write's value."""

    def __init__(self, client: Any, table_name: str) -> None:
        super().__init__(client, table_name)
        self.progress_writes: list[float] = []

    def set_progress(self, job_id: str, *, attempt: int, progress: Progress, now: datetime) -> bool:
        self.progress_writes.append(progress.fraction)
        return super().set_progress(job_id, attempt=attempt, progress=progress, now=now)


@contextmanager
def api(env: WorkerEnv) -> Iterator[TestClient]:
    admin = AccessAdmin(
        DynamoDbAccessStore(raw_client("dynamodb", env.endpoint), env.settings.access_table_name), UtcClock()
    )
    token = admin.create_key(TENANT).token
    app = create_app(container=build_container(env.settings.model_copy(update={"send_linger_s": 0.0})))
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def get(client: TestClient, job_id: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_running_job_shows_its_progress_on_get_and_keeps_the_last_value(worker_env: WorkerEnv) -> None:
    env = worker_env
    gate = env.tmp / "gate"
    with api(env) as client:
        created = client.post("/api/v1/jobs", json={"type": "test_progress", "params": {"gate": str(gate)}})
        assert created.status_code == 201, created.text
        job_id = created.json()["jobId"]
        assert created.json()["progress"] is None  # never reported yet
        store = CountingStore(raw_client("dynamodb", env.endpoint), env.settings.table_name)
        worker = Worker(store=store, queue=env.queue, objects=env.objects, settings=env.settings, republish=False)
        worker.start()
        try:
            env.wait_for(
                "the half-way progress to show", lambda: (get(client, job_id)["progress"] or {}).get("fraction") == 0.5
            )
            running = get(client, job_id)
            assert running["status"] == "PROCESSING"
            assert running["progress"]["message"] == "step 50 of 50" and running["progress"]["updatedAt"]
            # Fifty reports within far less than the interval: at most two writes (the first report at once, the
            # latest one an interval later), however long the job then waits.
            time.sleep(2 * env.settings.progress_interval_s)
            assert 1 <= len(store.progress_writes) <= 2, store.progress_writes
            gate.touch()
            env.wait_terminal(job_id)
        finally:
            worker.stop(5.0)
        done = get(client, job_id)
    assert done["status"] == "SUCCEEDED" and done["result"] == {"steps": 50}
    assert done["progress"]["fraction"] == 1.0 and done["progress"]["message"] == "all done"
    assert len(store.progress_writes) <= 2  # the last value went with the outcome's write


def test_openapi_documents_progress_and_its_write_interval(worker_env: WorkerEnv) -> None:
    with api(worker_env) as client:
        schemas = client.get("/openapi.json").json()["components"]["schemas"]
    field = schemas["JobOut"]["properties"]["progress"]
    assert "progress" in schemas["JobOut"]["required"]
    assert f"at most once per job every {PROGRESS_INTERVAL_S:g} s" in field["description"]
    assert set(schemas["ProgressOut"]["properties"]) == {"fraction", "message", "updatedAt"}
    assert schemas["ProgressOut"]["properties"]["fraction"]["maximum"] == 1.0
