"""A group of :class:`~luffy.train.distributed.worker.TrainWorker` Ray actors that fails fast.

Placement: one placement-group bundle per node holding that node's ``workers_per_node`` workers
(``STRICT_PACK`` for one node, ``STRICT_SPREAD`` across nodes), so rank r runs on node
``r // workers_per_node``. Each actor asks for ``cpus_per_worker`` CPUs and, on CUDA, one GPU (Ray
sets its ``CUDA_VISIBLE_DEVICES``). Rank 0 publishes an address for ``torch.distributed``'s TCP
store and every rank joins the process group (NCCL on CUDA, gloo on CPU).

Failure (:meth:`WorkerGroup.call`): the driver never blocks on one worker. It polls every pending
call; the first error ends the call. A worker that died (Ray's actor-death error: killed, OOM,
segfault) is named with rank, pid, host and node IP; if the first error came from a *surviving*
rank (e.g. gloo noticing its peer is gone) the driver waits up to ``DEATH_GRACE_S`` for a death to
be reported and names the dead worker instead. Then every worker is killed -- the survivors are
usually stuck in a collective -- and :class:`luffy.train.TrainingError` is raised. A call that
outlives ``resources.call_timeout_s`` fails the same way (naming the workers still busy).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

from ...config import ResourcesSection
from ..errors import TrainingError
from .worker import TrainWorker

#: After a surviving worker's error, how long to wait for the actor-death report of a peer.
DEATH_GRACE_S = 3.0
#: How long the workers may take to start (import torch/transformers) and join the process group.
START_TIMEOUT_S = 300.0


class WorkerGroup:
    """``res.world_size`` training workers on ``device``; use :meth:`call`, then :meth:`shutdown`."""

    def __init__(self, res: ResourcesSection, device: str, log: Callable[[str], None] = print) -> None:
        import ray
        from ray.exceptions import GetTimeoutError
        from ray.util.placement_group import placement_group, remove_placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        self.res, self.device, self.log = res, device, log
        self.world = res.world_size
        self.call_timeout_s = res.call_timeout_s
        self.actors: list[Any] = []
        self.infos: list[dict[str, Any]] = [{"rank": r} for r in range(self.world)]
        self.dead = False
        #: tests/benchmarks: when True, ``largest_transfer`` is the largest pickled size (bytes) of one
        #: argument or result that crossed between driver and workers (Ray serialises them the same way)
        self.measure_transfers = False
        self.largest_transfer = 0
        g, gpu = res.workers_per_node, 1 if device == "cuda" else 0
        bundle = {"CPU": res.cpus_per_worker * g, **({"GPU": float(g)} if gpu else {})}
        self.pg = placement_group([bundle] * res.nodes, strategy="STRICT_SPREAD" if res.nodes > 1 else "STRICT_PACK")
        try:
            ray.get(self.pg.ready(), timeout=res.connect_timeout_s)
        except GetTimeoutError:
            remove_placement_group(self.pg)
            self.pg = None
            raise TrainingError(
                f"resources: cannot place {res.nodes} × {bundle} within {res.connect_timeout_s:g} s "
                f"(resources.connect_timeout_s); free in the Ray cluster: {ray.available_resources()}") from None
        remote = ray.remote(TrainWorker)
        t0 = time.perf_counter()
        for r in range(self.world):
            strategy = PlacementGroupSchedulingStrategy(self.pg, placement_group_bundle_index=r // g)
            self.actors.append(remote.options(num_cpus=res.cpus_per_worker, num_gpus=gpu, max_restarts=0,
                                              scheduling_strategy=strategy)
                               .remote(r, self.world, device, max(1, int(res.cpus_per_worker))))
        try:
            self.infos = self.call("info", timeout=START_TIMEOUT_S)
            addr, port = self.call("rendezvous", ranks=[0], timeout=START_TIMEOUT_S)[0]
            self.call("init_process_group", addr, port, res.call_timeout_s, timeout=START_TIMEOUT_S)
        except BaseException:
            self.shutdown()
            raise
        log(f"dist: {self.world} {device} worker(s) up in {time.perf_counter() - t0:.1f} s "
            f"({', '.join(self.describe(r) for r in range(self.world))})")

    def describe(self, rank: int) -> str:
        i = self.infos[rank]
        where = f"pid {i['pid']} on {i['host']} ({i['node_ip']})" if "pid" in i else "not started"
        return f"rank {rank}: {where}"

    # ----------------------------------------------------------------------------- calls
    def call(self, method: str, *args: Any, ranks: list[int] | None = None, timeout: float | None = None) -> list:
        """Call ``method(*args)`` on every worker (or on ``ranks``); their results in rank order.

        Arguments go to Ray's object store once and are shared by all workers. Fails fast with
        :class:`TrainingError` (see the module docstring)."""
        import ray

        if self.dead:
            raise TrainingError("the worker group has been shut down after a failure")
        ranks = list(range(self.world)) if ranks is None else ranks
        for a in args:
            self._note_transfer(a)
        refs_args = [ray.put(a) for a in args]
        refs = [getattr(self.actors[r], method).remote(*refs_args) for r in ranks]
        return self._wait(refs, ranks, method, self.call_timeout_s if timeout is None else timeout)

    def call_each(self, method: str, args_per_rank: list[tuple], timeout: float | None = None) -> list:
        """Call ``method(*args_per_rank[r])`` on every rank r (each rank its own arguments); results in
        rank order. Same failure handling as :meth:`call`."""
        if self.dead:
            raise TrainingError("the worker group has been shut down after a failure")
        if len(args_per_rank) != self.world:
            raise ValueError(f"call_each: {len(args_per_rank)} argument tuples for {self.world} workers")
        self._note_transfer(args_per_rank)
        refs = [getattr(self.actors[r], method).remote(*args_per_rank[r]) for r in range(self.world)]
        return self._wait(refs, list(range(self.world)), method, self.call_timeout_s if timeout is None else timeout)

    def _note_transfer(self, obj: Any) -> None:
        """With ``measure_transfers`` on: remember the largest pickled size of what the driver sends or gets."""
        if self.measure_transfers:
            import ray.cloudpickle

            self.largest_transfer = max(self.largest_transfer, len(ray.cloudpickle.dumps(obj)))

    def _wait(self, refs: list, ranks: list[int], what: str, timeout: float) -> list:
        import ray
        from ray.exceptions import RayActorError

        rank_of = {ref: r for ref, r in zip(refs, ranks)}
        results: dict[int, Any] = {}
        pending = list(refs)
        deadline = time.monotonic() + timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                busy = ", ".join(self.describe(rank_of[p]) for p in pending)
                self._fail(f"training worker(s) {busy} did not finish {what} within {timeout:g} s "
                           f"(resources.call_timeout_s); all workers killed")
            ready, pending = ray.wait(pending, num_returns=1, timeout=min(left, 1.0))
            for ref in ready:
                try:
                    results[rank_of[ref]] = ray.get(ref)
                    self._note_transfer(results[rank_of[ref]])
                except Exception as e:  # noqa: BLE001 - every worker error ends the run, named
                    errors = {rank_of[ref]: e}
                    if not isinstance(e, RayActorError):
                        self._collect_deaths(pending, rank_of, errors)
                    self._fail(self._explain(errors, what))
        return [results[r] for r in ranks]

    def _collect_deaths(self, pending: list, rank_of: dict, errors: dict[int, BaseException]) -> None:
        """Wait up to DEATH_GRACE_S for a pending call to report its worker's death (the root cause)."""
        import ray
        from ray.exceptions import RayActorError

        until = time.monotonic() + DEATH_GRACE_S
        while pending and time.monotonic() < until:
            ready, pending = ray.wait(pending, num_returns=1, timeout=max(0.0, until - time.monotonic()))
            for ref in ready:
                try:
                    ray.get(ref)
                except Exception as e:  # noqa: BLE001
                    errors[rank_of[ref]] = e
                    if isinstance(e, RayActorError):
                        return

    def _explain(self, errors: dict[int, BaseException], what: str) -> str:
        from ray.exceptions import RayActorError

        deaths = sorted(r for r, e in errors.items() if isinstance(e, RayActorError))
        if deaths:
            who = "; ".join(self.describe(r) for r in deaths)
            return f"training worker {who} died during {what}; the run stops (all workers killed)"
        r = min(errors)
        e = errors[r]
        cause = getattr(e, "cause", None) or e
        first = (str(cause).strip().splitlines() or [""])[0]
        return f"training worker {self.describe(r)} failed during {what}: {type(cause).__name__}: {first}"

    def _fail(self, message: str) -> None:
        self.shutdown(graceful=False)
        raise TrainingError(message)

    # ----------------------------------------------------------------------------- shutdown
    def shutdown(self, graceful: bool = True) -> None:
        """Leave the process group (graceful, bounded by a short timeout), kill the actors, free the placement."""
        import ray
        from ray.util.placement_group import remove_placement_group

        if graceful and not self.dead and self.actors:
            try:
                ray.get([a.shutdown.remote() for a in self.actors], timeout=10)
            except Exception as e:  # noqa: BLE001 - killing below is the fallback
                self.log(f"dist: workers did not leave the process group cleanly ({type(e).__name__})")
        self.dead = True
        for a in self.actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(a, no_restart=True)
        self.actors = []
        if self.pg is not None:
            with contextlib.suppress(Exception):
                remove_placement_group(self.pg)
            self.pg = None

    def pids(self) -> list[int]:
        return [int(i["pid"]) for i in self.infos]
