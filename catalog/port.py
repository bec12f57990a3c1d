"""The catalog's one typed port: every store operation, sync and async, by reference.

Code outside :mod:`catalog` never holds a :class:`~catalog.store.CatalogStore` or an
actor handle; it holds a port:

- :class:`CatalogPort` (blocking: training jobs, scripts, tools) and
- :class:`AsyncCatalogPort` (awaitable: Serve replicas),

each implemented in process over a store (:class:`LocalCatalog`,
:class:`AsyncLocalCatalog`: tests, benchmarks, single-process tools) and over the
cluster's catalog actor (:class:`catalog.actor.Catalog`, :class:`catalog.actor.AsyncCatalog`).

Each operation is listed once, in :class:`_Operations`, as a reference to the store
method that implements it (``register_model = Operation(CatalogStore.register_model)``),
so its signature lives in one place: a type checker reads the parameters and the
result from the store method, ``cat.register_model(...)`` is checked against them, and
an editor goes from the call to the store. Repositories are reached the same way,
named by their read schema (``models = RepoOf(s.Model)``). A call travels as an
:class:`Invocation` (the store function itself, never its name); whether it may be
repeated while the actor restarts is declared on the store method
(:func:`catalog.store.idempotent`).

Usage::

    cat: CatalogPort = LocalCatalog(CatalogStore.open(url))
    job = cat.training_jobs.get(job_id)
    acat: AsyncCatalogPort = AsyncLocalCatalog(store)
    model = await acat.find_model("SmolLM2-135M-Instruct")
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from pydantic import BaseModel

from catalog import schemas as s
from catalog.store import CatalogStore, Repo, is_idempotent

P = ParamSpec("P")
T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)


@dataclass(frozen=True)
class Invocation:
    """One store operation to run: a :class:`CatalogStore` method, or a :class:`Repo`
    method of the repository whose read schema is ``repo``. Pickles by reference (the
    function's module and qualified name), so it crosses Ray as a reference to code.
    """

    fn: Callable[..., Any]
    repo: type[BaseModel] | None = None

    @property
    def idempotent(self) -> bool:
        """Whether the operation may be repeated (:func:`catalog.store.idempotent`)."""
        return is_idempotent(self.fn)

    @property
    def name(self) -> str:
        """``register_model`` or ``Model.get``: for logs and error messages only."""
        return self.fn.__name__ if self.repo is None else f"{self.repo.__name__}.{self.fn.__name__}"

    def apply(self, store: CatalogStore, *args: Any, **kwargs: Any) -> Any:
        """Run the operation on ``store``; raises whatever the store raises."""
        target: object = store if self.repo is None else store.repo(self.repo)
        return self.fn(target, *args, **kwargs)


class _Invoker(abc.ABC):
    """What every port implementation provides: run one invocation."""

    @abc.abstractmethod
    def _invoke(self, call: Invocation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``call`` with ``args``/``kwargs``: its result (sync ports) or an
        awaitable of it (async ports)."""


class Operation(Generic[P, T]):
    """Descriptor for one store operation; the port's class attribute of that name.

    On a :class:`CatalogPort` it is a plain function with the store method's
    parameters; on an :class:`AsyncCatalogPort` it returns an awaitable of the same
    result.
    """

    def __init__(self, fn: Callable[Concatenate[CatalogStore, P], T]):
        self.call = Invocation(fn)

    @overload
    def __get__(self, port: None, owner: type) -> Operation[P, T]: ...
    @overload
    def __get__(self, port: CatalogPort, owner: type) -> Callable[P, T]: ...
    @overload
    def __get__(self, port: AsyncCatalogPort, owner: type) -> Callable[P, Awaitable[T]]: ...

    def __get__(self, port: _Invoker | None, owner: type) -> Any:
        if port is None:
            return self
        call = self.call

        def bound(*args: Any, **kwargs: Any) -> Any:
            return port._invoke(call, args, kwargs)

        bound.__name__ = call.name
        bound.__doc__ = call.fn.__doc__
        return bound


class _Repo(Generic[R]):
    """One repository, named by its read schema ``read``, reached through a port."""

    def __init__(self, port: _Invoker, read: type[R]):
        self._port = port
        self.read = read

    def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._port._invoke(Invocation(fn, self.read), args, kwargs)


class RepoPort(_Repo[R]):
    """One repository through a sync port: rows whose read model is ``R``. Each method
    is :class:`catalog.store.Repo`'s of the same name, with its errors."""

    def create(self, request: BaseModel, **extra: Any) -> R:
        """Insert one row from a ``*Create`` model; raises Conflict, InvalidArgument."""
        return self._run(Repo.create, request, **extra)

    def get(self, row_id: str) -> R:
        """The row with ``row_id``; raises NotFound."""
        return self._run(Repo.get, row_id)

    def list(
        self, *, page_size: int = 50, cursor: str | None = None,
        created_after: datetime | None = None, created_before: datetime | None = None,
        **filters: Any,
    ) -> s.Page[R]:
        """A page of rows, newest first, filtered by equality on ``filters``."""
        return self._run(Repo.list, page_size=page_size, cursor=cursor,
                         created_after=created_after, created_before=created_before, **filters)

    def update(self, row_id: str, **fields: Any) -> R:
        """Change updatable columns of one row; raises NotFound, InvalidArgument."""
        return self._run(Repo.update, row_id, **fields)

    def delete(self, row_id: str) -> None:
        """Delete one row; raises NotFound, or Conflict while it is referenced."""
        self._run(Repo.delete, row_id)


class AsyncRepoPort(_Repo[R]):
    """:class:`RepoPort` through an async port: the same operations, awaitable."""

    async def create(self, request: BaseModel, **extra: Any) -> R:
        """Insert one row from a ``*Create`` model; raises Conflict, InvalidArgument."""
        return await self._run(Repo.create, request, **extra)

    async def get(self, row_id: str) -> R:
        """The row with ``row_id``; raises NotFound."""
        return await self._run(Repo.get, row_id)

    async def list(
        self, *, page_size: int = 50, cursor: str | None = None,
        created_after: datetime | None = None, created_before: datetime | None = None,
        **filters: Any,
    ) -> s.Page[R]:
        """A page of rows, newest first, filtered by equality on ``filters``."""
        return await self._run(Repo.list, page_size=page_size, cursor=cursor,
                               created_after=created_after, created_before=created_before,
                               **filters)

    async def update(self, row_id: str, **fields: Any) -> R:
        """Change updatable columns of one row; raises NotFound, InvalidArgument."""
        return await self._run(Repo.update, row_id, **fields)

    async def delete(self, row_id: str) -> None:
        """Delete one row; raises NotFound, or Conflict while it is referenced."""
        await self._run(Repo.delete, row_id)


RowT = TypeVar("RowT", bound=s.Row)


async def apply_update(repo: AsyncRepoPort[RowT], row: RowT, change: BaseModel) -> RowT:
    """``row`` after writing, through ``repo``, the fields ``change`` sets (its non-null
    ones: a PATCH body); ``row`` itself when it sets none. Raises what
    :meth:`AsyncRepoPort.update` raises (NotFound, InvalidArgument, Conflict for a taken
    name)."""
    fields = change.model_dump(exclude_none=True)
    return await repo.update(row.id, **fields) if fields else row


class RepoOf(Generic[R]):
    """Descriptor for one repository, named by its read schema (``RepoOf(s.Model)``)."""

    def __init__(self, read: type[R]):
        self.read = read

    @overload
    def __get__(self, port: None, owner: type) -> RepoOf[R]: ...
    @overload
    def __get__(self, port: CatalogPort, owner: type) -> RepoPort[R]: ...
    @overload
    def __get__(self, port: AsyncCatalogPort, owner: type) -> AsyncRepoPort[R]: ...

    def __get__(self, port: _Invoker | None, owner: type) -> Any:
        if port is None:
            return self
        kind = AsyncRepoPort if isinstance(port, AsyncCatalogPort) else RepoPort
        return kind(port, self.read)


class _Operations(_Invoker):
    """The catalog's operations, each once (see the module docstring)."""

    # repositories: create, get, list, update, delete
    models = RepoOf(s.Model)
    datasets = RepoOf(s.Dataset)
    training_jobs = RepoOf(s.TrainingJob)
    predictions = RepoOf(s.Prediction)
    images = RepoOf(s.Image)
    source_images = RepoOf(s.SourceImage)
    image_edits = RepoOf(s.ImageEdit)
    videos = RepoOf(s.Video)
    prompt_helpers = RepoOf(s.PromptHelper)
    theme_helpers = RepoOf(s.ThemeHelper)
    tags = RepoOf(s.Tag)
    projects = RepoOf(s.Project)
    project_items = RepoOf(s.ProjectItem)
    usage = RepoOf(s.UsageRecord)
    carbon = RepoOf(s.CarbonRecord)
    api_keys = RepoOf(s.ApiKey)
    batches = RepoOf(s.Batch)
    evaluations = RepoOf(s.Evaluation)

    # health
    ping = Operation(CatalogStore.ping)
    dialect = Operation(CatalogStore.dialect)
    # models and datasets
    register_model = Operation(CatalogStore.register_model)
    find_model = Operation(CatalogStore.find_model)
    next_version = Operation(CatalogStore.next_version)
    # training jobs
    create_training_job = Operation(CatalogStore.create_training_job)
    transition_job = Operation(CatalogStore.transition_job)
    claim_job = Operation(CatalogStore.claim_job)
    append_metrics = Operation(CatalogStore.append_metrics)
    list_metrics = Operation(CatalogStore.list_metrics)
    add_checkpoint = Operation(CatalogStore.add_checkpoint)
    list_checkpoints = Operation(CatalogStore.list_checkpoints)
    add_event = Operation(CatalogStore.add_event)
    list_events = Operation(CatalogStore.list_events)
    # predictions, usage and carbon
    transition_prediction = Operation(CatalogStore.transition_prediction)
    record_usage = Operation(CatalogStore.record_usage)
    usage_summary = Operation(CatalogStore.usage_summary)
    record_carbon = Operation(CatalogStore.record_carbon)
    carbon_summary = Operation(CatalogStore.carbon_summary)
    # prompt styles
    create_prompt_helper = Operation(CatalogStore.create_prompt_helper)
    add_prompt_helper_version = Operation(CatalogStore.add_prompt_helper_version)
    get_prompt_helper_version = Operation(CatalogStore.get_prompt_helper_version)
    list_prompt_helper_versions = Operation(CatalogStore.list_prompt_helper_versions)
    fork_prompt_helper = Operation(CatalogStore.fork_prompt_helper)
    create_theme_helper = Operation(CatalogStore.create_theme_helper)
    add_theme_helper_version = Operation(CatalogStore.add_theme_helper_version)
    get_theme_helper_version = Operation(CatalogStore.get_theme_helper_version)
    list_theme_helper_versions = Operation(CatalogStore.list_theme_helper_versions)
    fork_theme_helper = Operation(CatalogStore.fork_theme_helper)
    # favourites, tags, projects, retention
    set_favorite = Operation(CatalogStore.set_favorite)
    set_tags = Operation(CatalogStore.set_tags)
    create_project = Operation(CatalogStore.create_project)
    find_project = Operation(CatalogStore.find_project)
    add_project_item = Operation(CatalogStore.add_project_item)
    list_project_items = Operation(CatalogStore.list_project_items)
    media_to_purge = Operation(CatalogStore.media_to_purge)
    mark_purged = Operation(CatalogStore.mark_purged)
    # batches
    create_batch = Operation(CatalogStore.create_batch)
    transition_batch = Operation(CatalogStore.transition_batch)
    claim_batch = Operation(CatalogStore.claim_batch)
    add_batch_event = Operation(CatalogStore.add_batch_event)
    list_batch_events = Operation(CatalogStore.list_batch_events)
    # evaluations
    create_evaluation = Operation(CatalogStore.create_evaluation)
    start_evaluation = Operation(CatalogStore.start_evaluation)
    complete_evaluation = Operation(CatalogStore.complete_evaluation)
    fail_evaluation = Operation(CatalogStore.fail_evaluation)
    # API keys
    create_api_key = Operation(CatalogStore.create_api_key)
    create_job_token = Operation(CatalogStore.create_job_token)
    authenticate = Operation(CatalogStore.authenticate)


class CatalogPort(_Operations):
    """The catalog, blocking: ``cat.register_model(request)`` returns the model."""

    @abc.abstractmethod
    def _invoke(self, call: Invocation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run ``call`` and return its result."""


class AsyncCatalogPort(_Operations):
    """The catalog, awaitable: ``await cat.register_model(request)``.

    Usage records are written with ``await cat.record_usage(batch)``, which returns once
    the batch is stored; Serve replicas batch and retry them through
    :class:`catalog.usage_buffer.UsageBuffer`, so the request path never waits on it.
    """

    @abc.abstractmethod
    def _invoke(
        self, call: Invocation, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        """An awaitable of ``call``'s result."""


class LocalCatalog(CatalogPort):
    """:class:`CatalogPort` over an in-process store (tests, tools, benchmarks)."""

    def __init__(self, store: CatalogStore):
        self.store = store

    def _invoke(self, call: Invocation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return call.apply(self.store, *args, **kwargs)


class AsyncLocalCatalog(AsyncCatalogPort):
    """:class:`AsyncCatalogPort` over an in-process store; each call runs in a worker
    thread so the event loop never blocks on the database."""

    def __init__(self, store: CatalogStore):
        self.store = store

    def _invoke(
        self, call: Invocation, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        return asyncio.to_thread(call.apply, self.store, *args, **kwargs)
