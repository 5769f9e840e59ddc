"""Where runs execute: one small interface, three implementations.

``Serial`` runs in this process (the Python API's default: safe in notebooks and debuggers). ``Processes`` uses a
loky pool of local worker processes (the CLI's default); loky pickles functions with cloudpickle, so functions
defined in a notebook work, which the standard library's pool does not under spawn or forkserver. ``Dask`` sends
the same tasks to a ``dask.distributed`` cluster (``pip install '.[dask]'``), or to a ``LocalCluster`` it starts.

Every executor yields results as tasks finish, in completion order; a task's result must say which task it was.
Closing the iterator early (``--fail-fast``, Ctrl-C) cancels the tasks not yet started.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import as_completed
from typing import Any, Protocol, TypeVar

from sim.errors import SpecError

T = TypeVar("T")
R = TypeVar("R")


class Executor(Protocol):
    """Runs ``fn`` over ``items`` and yields each result as soon as it is ready (in any order)."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Apply ``fn`` to every item; yield results as they finish."""
        ...

    def describe(self) -> str:
        """A few words for logs, e.g. ``"2 processes"``."""
        ...


def cpu_count() -> int:
    """Cores this process may use (respecting CPU affinity and container limits, via loky)."""
    from loky import cpu_count as loky_cpu_count  # here: loky is only needed when processes are

    return max(1, int(loky_cpu_count()))


class Serial:
    """Runs every task in this process, one after another, in order."""

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Apply ``fn`` to each item in turn."""
        for item in items:
            yield fn(item)

    def describe(self) -> str:
        """``"serial"``."""
        return "serial"


class Processes:
    """A loky pool of ``workers`` local processes (default: every core this process may use).

    The pool is loky's reusable executor: a second sweep in the same notebook reuses the warm workers.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers if workers is not None else cpu_count()
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Submit every item at once; yield results as workers finish them."""
        if not items:
            return
        from loky import get_reusable_executor  # here: importing loky starts nothing, but costs time

        pool = get_reusable_executor(max_workers=self.workers)
        futures = [pool.submit(fn, item) for item in items]
        try:
            for future in as_completed(futures):
                yield future.result()
        finally:
            for future in futures:
                future.cancel()

    def describe(self) -> str:
        """E.g. ``"2 processes"``."""
        return f"{self.workers} process{'es' if self.workers != 1 else ''}"


class ExecutorLost(RuntimeError):
    """The executor cannot go on: its scheduler, or every worker, is gone. ``what`` says which; ``kept`` is how
    many runs the store holds (set by the sweep that was running)."""

    def __init__(self, what: str, kept: int | None = None) -> None:
        super().__init__(what)
        self.what = what
        self.kept = kept


DASK_CONNECT_S = 5.0
"""Seconds to wait for a Dask scheduler to answer, when connecting and when reconnecting after a lost connection."""
DASK_NO_WORKER_S = 10.0
"""Seconds a sweep waits with no Dask worker left before it gives up (the scheduler would wait for ever)."""
_DASK_POLL_S = 1.0


class Dask:
    """A ``dask.distributed`` cluster: at ``address`` (e.g. ``tcp://scheduler:8786``), or, without one, a
    ``LocalCluster`` of ``workers`` workers started for the sweep and closed after it.

    ``processes=False`` runs a LocalCluster's workers as threads of this process (quick to start; for tests).
    Workers need this package installed; tasks carry their parsed scenarios, so they need no files.
    """

    def __init__(self, address: str | None = None, *, workers: int | None = None, processes: bool = True) -> None:
        self.address = address
        self.workers = workers
        self.processes = processes

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> Iterator[R]:
        """Submit every item to the cluster; yield results as they finish."""
        if not items:
            return
        try:
            from distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - the test environment has dask
            raise RuntimeError("the Dask executor needs dask: pip install 'k8s-service-sim[dask]'") from None

        cluster: Any = None
        if self.address is None:
            cluster = LocalCluster(
                n_workers=self.workers or cpu_count(),
                threads_per_worker=1,
                processes=self.processes,
                dashboard_address=":0",  # any free port: None means the default :8787, which another cluster may hold
            )
        quiet = _Quiet("distributed.client", "distributed.core", "distributed.batched")
        _drop_gather_exits()
        try:
            client = Client(cluster if cluster is not None else self.address, timeout=DASK_CONNECT_S)
        except (OSError, TimeoutError) as e:
            quiet.restore()
            raise SpecError(
                str(self.address),
                "",
                f"no Dask scheduler answered within {DASK_CONNECT_S:g} s ({type(e).__name__}): start one "
                "(`dask scheduler`, then `dask worker ADDRESS`) or check the address",
            ) from None
        futures = client.map(fn, list(items), pure=False)
        try:
            yield from self._results(client, futures)
        finally:
            client.cancel(futures)
            client.close()
            if cluster is not None:
                cluster.close()
            quiet.restore()

    def _results(self, client: Any, futures: list[Any]) -> Iterator[Any]:
        """The futures' results as they finish; ExecutorLost when the scheduler goes away, a worker keeps dying
        on a task, or no worker is left for ``DASK_NO_WORKER_S`` seconds."""
        from concurrent.futures import CancelledError

        from distributed import wait
        from distributed.scheduler import KilledWorker

        where = f"the Dask scheduler at {self.address}" if self.address else "the Dask LocalCluster"
        pending, alive = set(futures), time.monotonic()  # alive: when a worker was last seen, or a result came
        try:
            while pending:
                try:
                    done, pending = wait(pending, timeout=_DASK_POLL_S, return_when="FIRST_COMPLETED")
                except TimeoutError:  # nothing finished within the poll
                    done = set()
                held = client.who_has(list(done)) if done else {}
                for future in done:
                    if not held.get(future.key):  # its worker died before the result was fetched: recomputed, or lost
                        pending.add(future)
                        continue
                    try:
                        result = future.result(timeout=DASK_NO_WORKER_S)
                    except TimeoutError:  # its worker died in between
                        pending.add(future)
                        continue
                    yield result
                if done or client.scheduler_info(n_workers=-1)["workers"]:
                    alive = time.monotonic()
                elif time.monotonic() - alive >= DASK_NO_WORKER_S:
                    raise ExecutorLost(f"{where} has had no worker for {DASK_NO_WORKER_S:g} s")
        except KilledWorker as e:
            raise ExecutorLost(f"{where}: a worker died running one run, again and again ({e})") from None
        except (CancelledError, OSError) as e:
            raise ExecutorLost(f"{where} was lost ({type(e).__name__})") from None

    def describe(self) -> str:
        """E.g. ``"Dask at tcp://host:8786"`` or ``"Dask LocalCluster (2 workers)"``."""
        if self.address:
            return f"Dask at {self.address}"
        return f"Dask LocalCluster ({self.workers or cpu_count()} workers)"


class _Quiet:
    """Loggers raised to CRITICAL until ``restore()``: distributed logs a lost connection's tracebacks on its own
    thread, where the sweep turns it into one line."""

    def __init__(self, *names: str) -> None:
        import logging

        self.levels = {name: logging.getLogger(name).level for name in names}
        for name in names:
            logging.getLogger(name).setLevel(logging.CRITICAL)

    def restore(self) -> None:
        """Put each logger's level back."""
        import logging

        for name, level in self.levels.items():
            logging.getLogger(name).setLevel(level)


def _drop_gather_exits() -> None:
    """Keep asyncio from printing "Task exception was never retrieved ... AllExit" when a lost worker's result
    fetch is abandoned: distributed's own signal to stop gathering, noise after the sweep's one line. Installed
    once, it drops only those records."""
    import logging

    from distributed.client import AllExit

    class _NoAllExit(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return not (record.exc_info and isinstance(record.exc_info[1], AllExit))

    log = logging.getLogger("asyncio")
    if not any(type(f).__name__ == "_NoAllExit" for f in log.filters):
        log.addFilter(_NoAllExit())
