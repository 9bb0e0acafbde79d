"""Run one function over many jobs in forked worker processes, yielding the results as they come.

Fork, not spawn: the workers inherit the parent's memory (a million legacy rows, already placed)
instead of receiving a pickled copy; only the small results travel back, one pipe per worker. With
one worker, or where fork is not available, the jobs simply run in this process.

A worker stops between jobs when told to (another failed, or the parent was interrupted); a job it
is in the middle of finishes or cleans up after itself, so no half-done work is left behind.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.synchronize import Event
from typing import Any, TypeVar

from malabot.errors import MalabotError

Job = TypeVar("Job")
Result = TypeVar("Result")

_JOIN_SECONDS = 60


def in_workers(jobs: Sequence[Job], work: Callable[[Job], Result], workers: int) -> Iterator[Result]:
    if workers <= 1 or len(jobs) <= 1 or "fork" not in multiprocessing.get_all_start_methods():
        for job in jobs:
            yield work(job)
        return
    context = multiprocessing.get_context("fork")
    stop = context.Event()
    pipes: list[Connection] = []
    processes = []
    try:
        for share in (jobs[index::workers] for index in range(workers)):
            receiver, sender = context.Pipe(duplex=False)
            # The child gets copies of every read end open here (its own included): it closes them, so
            # that if this process dies its next send fails and it stops, instead of blocking forever
            # on a full pipe, alive, still holding the tenants lock it inherited.
            process = context.Process(target=_serve, args=(share, work, sender, stop, [*pipes, receiver]),
                                      daemon=True)
            process.start()
            sender.close()
            pipes.append(receiver)
            processes.append(process)
        yield from _collect(pipes)
    finally:
        stop.set()
        for process in processes:
            process.join(_JOIN_SECONDS)
            if process.is_alive():
                process.terminate()
                process.join()


def _collect(pipes: list[Connection]) -> Iterator[Any]:
    open_pipes = list(pipes)
    while open_pipes:
        for ready in wait(open_pipes):
            assert isinstance(ready, Connection)
            try:
                kind, payload = ready.recv()
            except EOFError:
                raise MalabotError("a worker process died; the files it finished are complete, "
                                   "run again to continue") from None
            if kind == "result":
                yield payload
            elif kind == "done":
                open_pipes.remove(ready)
            elif kind == "interrupted":
                raise KeyboardInterrupt
            else:
                raise payload


def _serve(share: Sequence[Any], work: Callable[[Any], Any], sender: Connection, stop: Event,
           parent_ends: Sequence[Connection]) -> None:
    """The worker's life: run its share of the jobs, send each result, then say it is done."""
    for end in parent_ends:
        end.close()
    parent = os.getppid()
    try:
        for job in share:
            if stop.is_set() or os.getppid() != parent:  # told to stop, or the parent is gone
                break
            sender.send(("result", work(job)))
        sender.send(("done", None))
    except KeyboardInterrupt:
        _send_quietly(sender, ("interrupted", None))
    except BaseException as error:  # every failure must reach the parent
        _send_quietly(sender, ("error", _picklable(error)))
    finally:
        sender.close()


def _picklable(error: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(error))
        return error
    except Exception:  # not picklable: the message alone
        return MalabotError(str(error))


def _send_quietly(sender: Connection, message: tuple[str, object]) -> None:
    try:
        sender.send(message)
    except (OSError, ValueError):
        pass  # the parent is gone or has stopped listening
