"""Virtual-time facility simulator: replays of batch logs through hexflow's scheduler.

Nothing here reads the clock; time is the log's. The policy is ``hexflow.scheduler``'s,
the same code a live site uses.
"""

from hexflow.sim.replay import BOUNDED_SLOWDOWN_TAU, JobRow, ReplayResult, replay

__all__ = ["BOUNDED_SLOWDOWN_TAU", "JobRow", "ReplayResult", "replay"]
