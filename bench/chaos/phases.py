"""The phases a chaos run goes through, in order: each an async callable that takes the
Campaign (bench/chaos/campaign.py) and returns its rows of the table: the faults under
load, the fan-out killed mid-job, then the fuzzer (attacks) on the settled cluster."""

from __future__ import annotations

from bench.chaos.campaign import Phase
from bench.chaos.fanout_kill import fanout_killed_midway
from bench.chaos.fuzzing import fuzzed
from bench.chaos.under_faults import money_chat_dms

PHASES: list[Phase] = [money_chat_dms, fanout_killed_midway, fuzzed]

__all__ = ["PHASES"]
