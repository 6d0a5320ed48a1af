#!/usr/bin/env python3
"""Turn bench/run.sh's raw measurements into the final table and JSON.

    report.py [--quick 0|1] [--clk-tck N] [--nginx V] [--commit C] RESULTS_TSV JSON_OUT

RESULTS_TSV has one measurement per line, tab-separated (see run.sh's
`record` calls):
    cpu     SERVER RUN us_per_request requests requests_per_s errors ticks
    idle    SERVER bytes_per_conn rss_before_kb rss_during_kb answered held conns_open
    active  SERVER responses_per_s p99_s bytes_per_conn errors requests rss_base_kb rss_peak_kb
    pressure PART percent_of_time_some_task_waited_for_a_cpu   ("-" if unknown)

Prints the table, writes JSON_OUT, exits 0 if every target is met, else 1.
"""
import argparse
import datetime
import json
import os
import statistics
import sys

SERVERS = ("awaitd", "nginx")
IDLE_N = 10000
ACTIVE_N = 10000


def load(path):
    rows = {"cpu": [], "idle": {}, "active": {}, "cpu_pressure_percent": {}}
    with open(path) as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            if v[0] == "cpu":
                rows["cpu"].append({
                    "server": v[1], "run": int(v[2]), "us_per_request": float(v[3]),
                    "requests": int(v[4]), "requests_per_s": float(v[5]),
                    "errors": int(v[6]), "cpu_ticks": int(v[7]),
                })
            elif v[0] == "idle":
                rows["idle"][v[1]] = {
                    "bytes_per_conn": float(v[2]), "rss_before_kb": int(v[3]),
                    "rss_during_kb": int(v[4]), "answered": int(v[5] or 0),
                    "held": int(v[6] or 0),
                    "connections_open": int(v[7]) if len(v) > 7 and v[7] else None,
                }
            elif v[0] == "active":
                rows["active"][v[1]] = {
                    "responses_per_s": float(v[2]), "p99_s": float(v[3]),
                    "bytes_per_conn": float(v[4]), "errors": int(v[5]),
                    "requests": int(v[6]), "rss_base_kb": int(v[7]), "rss_peak_kb": int(v[8]),
                }
            elif v[0] == "pressure":
                rows["cpu_pressure_percent"][v[1]] = None if v[2] == "-" else float(v[2])
    return rows


def ratio(a, b):
    return a / b if a is not None and b else None


def figures(rows):
    """The table's rows: figure, unit, awaitd, nginx, ratio, target, pass (None = info)."""
    out = []
    cpu = rows["cpu"]
    if cpu:
        by = {s: {r["run"]: r for r in cpu if r["server"] == s} for s in SERVERS}
        runs = sorted(set(by["awaitd"]) & set(by["nginx"]))
        pair = [by["awaitd"][i]["us_per_request"] / by["nginx"][i]["us_per_request"] for i in runs]
        med = {s: statistics.median(r["us_per_request"] for r in by[s].values()) for s in SERVERS}
        r = statistics.median(pair)
        out.append(dict(id="cpu_us_per_request", figure="server CPU per request (median)", unit="us",
                        awaitd=med["awaitd"], nginx=med["nginx"], ratio=r,
                        ratio_note="median of per-pair ratios", pair_ratios=pair,
                        target="ratio <= 1.00", passed=r <= 1.0))
        errs = {s: sum(x["errors"] for x in by[s].values()) for s in SERVERS}
        out.append(dict(id="cpu_failed_requests", figure="  failed requests, CPU runs", unit="", awaitd=errs["awaitd"],
                        nginx=errs["nginx"], ratio=None, target="0",
                        passed=errs["awaitd"] == 0))
    idle = rows["idle"]
    if all(s in idle for s in SERVERS):
        a, n = idle["awaitd"], idle["nginx"]
        complete = a["answered"] == IDLE_N and a["held"] == IDLE_N
        out.append(dict(id="idle_bytes_per_conn", figure=f"memory per idle connection ({IDLE_N})", unit="B",
                        awaitd=a["bytes_per_conn"], nginx=n["bytes_per_conn"],
                        ratio=ratio(a["bytes_per_conn"], n["bytes_per_conn"]),
                        target="awaitd <= nginx",
                        passed=complete and a["bytes_per_conn"] <= n["bytes_per_conn"]))
        out.append(dict(id="idle_conns_answered_and_held", figure="  connections answered and held", unit="",
                        awaitd=min(a["answered"], a["held"]), nginx=min(n["answered"], n["held"]),
                        ratio=None, target=str(IDLE_N), passed=complete))
    act = rows["active"]
    if all(s in act for s in SERVERS):
        a, n = act["awaitd"], act["nginx"]
        out.append(dict(id="active_responses_per_s", figure=f"/delay/1 x {ACTIVE_N}: responses/s", unit="1/s",
                        awaitd=a["responses_per_s"], nginx=n["responses_per_s"],
                        ratio=ratio(a["responses_per_s"], n["responses_per_s"]),
                        target=f"info (ideal {ACTIVE_N})", passed=None))
        out.append(dict(id="active_p99_s", figure="  p99 latency", unit="s", awaitd=a["p99_s"], nginx=n["p99_s"],
                        ratio=ratio(a["p99_s"], n["p99_s"]), target="<= 1.05 s",
                        passed=a["p99_s"] <= 1.05))
        out.append(dict(id="active_bytes_per_conn", figure="  memory per connection (peak)", unit="B",
                        awaitd=a["bytes_per_conn"], nginx=n["bytes_per_conn"],
                        ratio=ratio(a["bytes_per_conn"], n["bytes_per_conn"]),
                        target="<= 1024 B", passed=a["bytes_per_conn"] <= 1024))
        out.append(dict(id="active_failed_requests", figure="  failed requests (errors, non-2xx)", unit="",
                        awaitd=a["errors"], nginx=n["errors"], ratio=None, target="0",
                        passed=a["errors"] == 0))
    return out


def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, int):
        return f"{v:,}"
    if unit == "s":
        return f"{v:.3f}"
    if unit == "us":
        return f"{v:.2f}"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def table(figs):
    head = ("figure", "awaitd", "nginx", "ratio", "target", "pass/fail")
    lines = []
    for f in figs:
        verdict = "-" if f["passed"] is None else ("PASS" if f["passed"] else "FAIL")
        lines.append((f["figure"] + (f" ({f['unit']})" if f["unit"] else ""),
                      fmt(f["awaitd"], f["unit"]), fmt(f["nginx"], f["unit"]),
                      "-" if f["ratio"] is None else f"{f['ratio']:.2f}", f["target"], verdict))
    w = [max(len(r[i]) for r in [head] + lines) for i in range(len(head))]

    def row(r):
        return "  ".join(c.ljust(w[i]) if i in (0, 4, 5) else c.rjust(w[i]) for i, c in enumerate(r))

    return "\n".join([row(head), "  ".join("-" * x for x in w)] + [row(r) for r in lines])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", type=int, default=0)
    ap.add_argument("--clk-tck", type=int, default=100)
    ap.add_argument("--nginx", default="")
    ap.add_argument("--commit", default="")
    ap.add_argument("results")
    ap.add_argument("json_out")
    args = ap.parse_args()

    rows = load(args.results)
    figs = figures(rows)
    print(table(figs))
    failed = [f["figure"].strip() for f in figs if f["passed"] is False]
    psi = rows["cpu_pressure_percent"]
    if psi:
        print("CPU pressure (time some task waited for a CPU): " + ", ".join(
            f"{k} {'?' if v is None else f'{v:.0f}%'}" for k, v in psi.items())
            + ("; other work competed with the runs" if any(v and v >= 10 for v in psi.values())
               else ""))
    if args.quick:
        print("(--quick: short runs, the figures are rough)")
    print("all targets met" if not failed else "targets missed: " + "; ".join(failed))

    doc = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": args.commit, "quick": bool(args.quick), "nginx": args.nginx,
        "clk_tck": args.clk_tck,
        "figures": [dict(f, figure=f["figure"].strip()) for f in figs],
        "runs": rows,
        "all_passed": not failed,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.json_out)), exist_ok=True)
    with open(args.json_out, "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
