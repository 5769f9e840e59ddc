"""The event path, the only SimPy code: ``run(scenario, seed) -> RunResult``.

A request is a chain of SimPy callbacks rather than a generator process (about 3x faster): send -> (path delay)
-> arrive at the backend pod -> (queue) -> start -> (service time) -> finish -> (path delay back) -> return. Each
step is one ``Timeout`` whose value carries the request (``backends.Request``), so a request costs at most four
events: the send tick, the trip out, the service and the trip back. A path's hops are drawn and summed into one
delay each way.

Steps that nothing can change are not events (``shortcuts``, on by default; off, every step is an event and the
records are the same, times to the last bits, which the tests check). In a cluster that does not change, a FIFO
pod's start and finish follow from the arrival order alone: each request takes the worker that frees first (the
Kiefer-Wolfowitz recursion over the workers' free times), so arriving computes both (``ComputedFifo``), and the
service draws fall to the same requests, in the same order. A reply that nobody waits for (an open-loop client
without a request timeout, a picker that does not count connections) is written when it is known, not
scheduled. Open-loop sends, which nothing in the system can move, are one merged schedule with one pending event.
A closed-loop reply that only the client's next send waits for is folded into that send (``Run.fold``), and a
closed-loop stream with one entry node and a new connection per request takes the lane (``lane``): where the trip
out is 0 s and nothing else is due, its request arrives, is served and replies in its send's callback (one event a
request instead of three).

A run that needs no event at all (``sim.solver.events_needed``) is not run here: ``sim.facade`` hands it to the
event-free solver, whose exact way gives this path's records byte for byte.

The package: ``records`` (the record writer), ``backends`` (the request in flight, one backend class per
discipline), ``proxies`` (routes per stream and entry node, rebuilt on syncs; clients' state), ``run`` (``Run``:
setup and a request's life, one callback per step), ``lane`` (a closed-loop send to reply in one callback),
``calls`` (call graphs: a request's calls after its own work, and the backends that hold a worker through them).
Decisions are not made here: routes come from the plan (``sim.plan``), pickers and affinity tables are the
routing layer's, every draw comes from ``sim.plan.Draws``, and the RunResult is assembled by ``Plan.result``, as
the solver's is.
"""

from sim.engine.run import run

__all__ = ["run"]
