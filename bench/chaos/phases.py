"""The phases a chaos run goes through, in order: each an async callable that takes the
Campaign (bench/chaos/campaign.py) and returns its rows of the table. Another phase (a
fuzzer, say) is one more entry; `golive chaos` then runs and reports it with the rest."""

from __future__ import annotations

from bench.chaos.campaign import Phase
from bench.chaos.fanout_kill import fanout_killed_midway
from bench.chaos.under_faults import money_chat_dms

PHASES: list[Phase] = [money_chat_dms, fanout_killed_midway]

__all__ = ["PHASES"]
