"""Virtual-time facility simulator: replays of batch logs through hexflow's scheduler.

Nothing here reads the clock; time is the log's. The policies are ``hexflow.scheduler``'s,
the same code a live site uses: the one-machine batch policies (``replay``) or the facility
policy on pools of nodes, elastic by a time-of-day plan (``replay_facility``).
``synthesize`` makes seeded synthetic logs.
"""

from hexflow.sim.facility import FacilityResult, PoolReport, replay_facility
from hexflow.sim.metrics import BOUNDED_SLOWDOWN_TAU, JobRow, ReplayResult
from hexflow.sim.plans import load_plan
from hexflow.sim.replay import replay
from hexflow.sim.seam import PolicyFactory, PoolPolicy, StatelessPolicy, stateless
from hexflow.sim.synthetic import SynthConfig, synthesize

__all__ = [
    "BOUNDED_SLOWDOWN_TAU",
    "FacilityResult",
    "JobRow",
    "PolicyFactory",
    "PoolPolicy",
    "PoolReport",
    "ReplayResult",
    "StatelessPolicy",
    "SynthConfig",
    "load_plan",
    "replay",
    "replay_facility",
    "stateless",
    "synthesize",
]
