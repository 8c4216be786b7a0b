"""The chaos run's table and result.json: one row per invariant, the faults by kind."""

from __future__ import annotations

from typing import Any

from bench.report import table

HEADERS = ["workload", "operations", "faults during it", "acknowledged", "lost", "duplicated",
           "result"]


def passed(result: dict[str, Any]) -> bool:
    """Every row held, every fault was survived, at least one fault was injected (a run
    without faults proves nothing), and the run had no error."""
    faults = result.get("faults") or []
    return (bool(result.get("rows")) and all(r["ok"] for r in result["rows"])
            and bool(faults) and all(f["survived"] for f in faults)
            and not result.get("errors") and not result.get("interrupted"))


def render(result: dict[str, Any]) -> str:
    rows = result.get("rows") or []
    out = [table([*HEADERS, "note"], [[r["workload"], r["operations"], r["faults"],
                                       r["acknowledged"], r["lost"], r["duplicated"],
                                       "ok" if r["ok"] else "FAILED", r["note"]]
                                      for r in rows])]
    summary = result.get("fault_summary") or {}
    if summary:
        out.append("")
        out.append(table(["fault", "injected", "survived", "longest s", "then healthy in s",
                          "what"],
                         [[kind, s["injected"], s["survived"], s.get("longest_s"),
                           s["recovery_max_s"], s["what"]] for kind, s in summary.items()]))
    redis = result.get("redis") or {}
    policy = redis.get("appendfsync", "?")
    out.append(f"\nredis-server {redis.get('version', '?')}, appendonly "
               f"{redis.get('appendonly', '?')}, appendfsync {policy} "
               + ("(every acknowledged write is on disk before its answer)" if policy == "always"
                  else "(a killed redis-server loses nothing; a crash of the machine may lose "
                       "the last second of acknowledged writes)"))
    for r in rows:
        for problem in r.get("problems") or []:
            out.append(f"{r['workload']}: {problem}")
    verdict = ("PASSED: nothing acknowledged lost or duplicated, every fault survived"
               if passed(result) else "INTERRUPTED" if result.get("interrupted") else "FAILED")
    out.append("\nCHAOS " + verdict)
    return "\n".join(out)


__all__ = ["HEADERS", "passed", "render"]
