"""The API's dependencies as Annotated aliases; tests swap them with app.dependency_overrides."""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Annotated, Protocol

from fastapi import Depends, Request

from runtime.api.middleware import trace_id_of
from runtime.auth.authenticator import Authenticator
from runtime.callbacks.addresses import CallbackUrlPolicy
from runtime.domain.listing import JobLister
from runtime.domain.ports import JobQueue, JobStore, ResultLinks
from runtime.domain.stats import StatsReader
from runtime.domain.submit import JobService
from runtime.settings import Settings


class ReadinessProbeLike(Protocol):
    def check(self) -> str | None:
        """None when ready, else the reason."""

    async def check_async(self) -> str | None:
        """check() awaited without holding a thread."""


@dataclass(frozen=True)
class Container:
    """What the composition root wires once per process."""

    settings: Settings
    store: JobStore
    queue: JobQueue
    service: JobService
    lister: JobLister
    readiness: ReadinessProbeLike
    authenticator: Authenticator
    batch_writes: Executor  # the conditional writes of batch submits (bounded, shared by all requests)
    stats: StatsReader  # GET /api/v1/stats, cached per process
    result_links: ResultLinks  # download links of results stored apart (GET of one job)
    # Checks callback URLs at submit; None when the environment has no callback queue (callbackUrl refused).
    callback_policy: CallbackUrlPolicy | None = None


def get_container(request: Request) -> Container:
    container: Container = request.app.state.container
    return container


def get_settings_dep(request: Request) -> Settings:
    return get_container(request).settings


def get_job_service(request: Request) -> JobService:
    return get_container(request).service


def get_job_lister(request: Request) -> JobLister:
    return get_container(request).lister


def get_batch_writes(request: Request) -> Executor:
    return get_container(request).batch_writes


def get_stats_reader(request: Request) -> StatsReader:
    return get_container(request).stats


def get_result_links(request: Request) -> ResultLinks:
    return get_container(request).result_links


def get_callback_policy(request: Request) -> CallbackUrlPolicy | None:
    return get_container(request).callback_policy


def get_readiness(request: Request) -> ReadinessProbeLike:
    return get_container(request).readiness


def get_trace_id(request: Request) -> str:
    return trace_id_of(request.scope)


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
JobServiceDep = Annotated[JobService, Depends(get_job_service)]
JobListerDep = Annotated[JobLister, Depends(get_job_lister)]
BatchWritesDep = Annotated[Executor, Depends(get_batch_writes)]
StatsDep = Annotated[StatsReader, Depends(get_stats_reader)]
ResultLinksDep = Annotated[ResultLinks, Depends(get_result_links)]
ReadinessDep = Annotated[ReadinessProbeLike, Depends(get_readiness)]
TraceIdDep = Annotated[str, Depends(get_trace_id)]
CallbackPolicyDep = Annotated[CallbackUrlPolicy | None, Depends(get_callback_policy)]
