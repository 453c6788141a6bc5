"""Where parallel work runs: in this process, or on a Dask cluster (Dask distributed).

:func:`executor` is the one way sweeps and training grids go parallel. It yields

- ``None`` for ``jobs=1`` and no scheduler: the caller runs everything in this process;
- for ``scheduler="tcp://host:8786"``: a ``concurrent.futures`` executor on a client of
  that running Dask scheduler (workers started by hand, by ``dask-jobqueue`` on SLURM/PBS,
  or by anything else that starts Dask workers);
- for ``jobs=N > 1``: the same on an embedded ``LocalCluster`` of N worker processes
  with one thread each, closed at the end.

Every task is submitted impure (each call runs) with ``retries`` for an exception raised
outside the work itself; a worker that dies in the middle of a task (killed, out of
memory, its node lost) is handled by the scheduler, which runs the task again on another
worker (up to ``distributed.scheduler.allowed-failures`` times, default 3, then the task
fails with ``KilledWorker``). The work units write their results atomically, so a task
killed half-way leaves nothing that is read back as finished.

The cache folder and the data root as this process resolves them
(:func:`hyperribbon.paths.cache_dir`, :func:`hyperribbon.paths.data_root`) are set as
``HYPERRIBBON_CACHE`` and ``HYPERRIBBON_DATA`` on every worker (a worker plugin, also on
workers that join later), and every worker present must see them: they are the folders
the workers share. Workers with GPUs declare one ``GPU`` resource each
(``dask worker ADDRESS --nthreads 1 --resources GPU=1``, one worker per GPU); with
``gpu=True`` every task asks for one, so a GPU takes one task at a time.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path

from distributed import WorkerPlugin

from ..paths import cache_dir, data_root
from ..util import InputError

log = logging.getLogger("hyperribbon.cluster")

#: Retries of a task that raised outside the work itself (the work reports its own
#: failures as values); a dead worker is the scheduler's business (allowed-failures).
RETRIES = 2
#: Seconds to wait for a scheduler before giving up.
CONNECT_TIMEOUT = 20


class SharedPaths(WorkerPlugin):
    """A Dask worker plugin that sets ``env`` (the shared folders) in every worker process,
    including workers that join later."""

    name = "hyperribbon-shared-paths"

    def __init__(self, env: dict[str, str]) -> None:
        self.env = dict(env)

    def setup(self, worker) -> None:
        os.environ.update(self.env)


def check_request(scheduler: str | None, jobs: int) -> None:
    """Refuse, before anything starts, a request that makes no sense: ``jobs`` < 1, or
    both a scheduler and ``jobs`` > 1 (raises :class:`~hyperribbon.util.InputError`)."""
    if jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {jobs}")
    if scheduler is not None and jobs > 1:
        raise InputError("give either --scheduler (a running cluster) or --jobs (a local "
                         "one), not both")


@contextlib.contextmanager
def executor(scheduler: str | None = None, jobs: int = 1, *, gpu: bool = False,
             shared: Sequence[Path] = (), retries: int = RETRIES
             ) -> Iterator[Executor | None]:
    """An executor for independent units of work (see the module docstring).

    Parameters
    ----------
    scheduler : address of a running Dask scheduler (``tcp://host:8786``), or None.
    jobs : without a scheduler: 1 runs in this process (yields None); N > 1 starts a
        ``LocalCluster`` of N single-threaded worker processes.
    gpu : every task asks for one ``GPU`` resource (the workers must declare it).
    shared : folders (besides the cache and the data root) every worker must see, such
        as the checkout and a sweep's output folder.
    retries : retries of a task that raised.

    Yields
    ------
    concurrent.futures.Executor or None

    Raises
    ------
    InputError : a bad request, an unreachable scheduler, or a worker that does not see a
        shared folder.
    """
    check_request(scheduler, jobs)
    if scheduler is None and jobs == 1:
        yield None
        return
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO chatter
    env = {"HYPERRIBBON_CACHE": str(cache_dir()), "HYPERRIBBON_DATA": str(data_root())}
    with contextlib.ExitStack() as stack:
        if scheduler is None:
            if gpu:
                raise InputError("--jobs starts CPU workers; for GPUs start one Dask worker "
                                 "per GPU (--resources GPU=1) and pass --scheduler, or use "
                                 "--device cpu (see book/reproduce.md)")
            cluster = stack.enter_context(LocalCluster(
                n_workers=jobs, threads_per_worker=1, processes=True,
                dashboard_address=None, silence_logs=logging.ERROR))
            address = cluster.scheduler_address
            log.info("started a local Dask cluster of %d worker processes", jobs)
        else:
            address = scheduler
        try:
            client = stack.enter_context(Client(address, timeout=f"{CONNECT_TIMEOUT}s"))
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler at {address} "
                             f"({str(exc).splitlines()[0]})") from None
        client.register_plugin(SharedPaths(env))
        folders = [f for f in (*env.values(), *map(str, shared)) if os.path.isdir(f)]
        seen = client.run(_visible, folders)
        for worker, missing in seen.items():
            if missing:
                raise InputError(f"Dask worker {worker} does not see {', '.join(missing)}: "
                                 "the cache, the data root and the checkout must be shared "
                                 "at the same paths (book/reproduce.md)")
        log.info("Dask scheduler %s with %d workers", address, len(seen))
        yield client.get_executor(pure=False, retries=retries,
                                  **({"resources": {"GPU": 1}} if gpu else {}))


def _visible(folders: list[str]) -> list[str]:
    """The folders of ``folders`` that this process cannot see (run on each worker)."""
    return [f for f in folders if not os.path.isdir(f)]
