"""Phase 3: the fuzzer (bench/fuzz.py): every Socket.IO event, every documented HTTP
route, signed webhooks, raw Engine.IO and Socket.IO frames. Its checks are its own (a
stable code for every case, no traceback, a Redis snapshot equal around each refusal, a
bystander served throughout); this phase puts its totals in the campaign's table, so one
command runs faults and attacks.

It runs on a node and redis-server of its own (under the run's folder, fuzz/): the
snapshot DUMPs every key twice per refused case, and after the fan-out phase the
campaign's Redis holds tens of thousands of keys: 188 cases took 172 s there, against
~17 ms a case on a fresh one."""

from __future__ import annotations

from bench.chaos.campaign import Campaign, Row
from bench.chaos.cluster import Cluster


async def fuzzed(c: Campaign) -> list[Row]:
    """About --fuzz-cases generated cases (0: the phase is skipped)."""
    cases = c.args.fuzz_cases
    if cases <= 0:
        return []
    try:
        from bench import fuzz
    except ImportError as exc:  # schemathesis and hypothesis come with golive[test]
        return [Row("fuzzing", 0, 0, 0, 0, 0, False,
                    f"needs the test extra (pip install -e '.[test]'): {exc}")]
    cluster = Cluster(c.run_dir / "fuzz", nodes=1, fsync=c.args.redis_fsync)
    c.closers.append(cluster.close)
    c.progress.update("starting the fuzzing phase's redis-server and node")
    await cluster.start()
    node = cluster.nodes[0]
    c.note(f"fuzzing {node.name} (its own Redis) with about {cases} cases")
    summary = await fuzz.run(node.url, cases, redis_url=cluster.redis.url,
                             log_path=node.log_path, webhook_secret=cluster.webhook_secret,
                             run_seed=c.args.fuzz_seed)
    bad = summary["crashes"] + summary["tracebacks"] + summary["half_written"]
    c.result["fuzz"] = {k: summary[k] for k in (
        "cases", "crashes", "tracebacks", "half_written", "seconds", "by_target")}
    note = (f"crashes {summary['crashes']}, tracebacks {summary['tracebacks']}, "
            f"half-written {summary['half_written']}")
    problems = [str(f)[:300] for f in summary["failures"][:5]]
    # a case is "acknowledged" when it got a clear answer: success or a stable refusal
    return [Row("fuzzing", summary["cases"], 0, summary["cases"] - summary["crashes"], 0, 0,
                bad == 0, note, problems)]


__all__ = ["fuzzed"]
