#!/usr/bin/python3
"""Turn bench/claims.sh's raw measurements into the report: charts (SVG, by
matplotlib), results.json, results.csv, summary.md and report.html.

    claims_report.py RAW_DIR OUT_DIR REPORT_HTML

RAW_DIR holds machine.tsv (key TAB value) and results.tsv, one measurement
a line (see claims.sh's `record` calls):
    idle   SERVER N rss_before_kb rss_during_kb answered held threads slab_delta_kb sock_delta_pages
    active SERVER N awaitload.json w0 w1 cpu_ticks ctxsw rss_base_kb rss_peak_kb threads
    get    (the same fields as active)
    died   SERVER N WORKLOAD
    pressure all PERCENT
w0 and w1 are the window, in seconds from the client's start, over which
cpu_ticks and ctxsw were read; the responses in it come from awaitload's
per-second timeline. Every derived figure is computed here, from these.
"""
import csv
import html
import io
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: smaller files
matplotlib.rcParams["svg.hashsalt"] = "awaitd"  # stable ids from run to run
import matplotlib.pyplot as plt  # noqa: E402

ORDER = ("awaitd", "threaded", "aiohttp", "uvloop", "nginx", "go")
LABEL = {
    "awaitd": "awaitd (C, one event loop)",
    "threaded": "C, thread per connection",
    "aiohttp": "aiohttp on asyncio",
    "uvloop": "aiohttp on uvloop",
    "nginx": "nginx (one worker)",
    "go": "Go net/http (GOMAXPROCS 1)",
}
STYLE = {
    "awaitd": dict(color="#d62728", marker="o", linewidth=2.4),
    "threaded": dict(color="#1f77b4", marker="s"),
    "aiohttp": dict(color="#2ca02c", marker="^"),
    "uvloop": dict(color="#98df8a", marker="v"),
    "nginx": dict(color="#7f7f7f", marker="D"),
    "go": dict(color="#9467bd", marker="P"),
}
P99_LIMIT_S = 2.0
ONE_MILLION = 1_000_000


def load(raw):
    machine = {}
    with open(os.path.join(raw, "machine.tsv")) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("\t")
            machine[k] = v
    hz = int(machine.get("clk_tck", 100))
    cells = {"idle": {}, "active": {}, "get": {}}
    died, pressure = [], None
    with open(os.path.join(raw, "results.tsv")) as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            kind = v[0]
            if kind == "idle":
                s, n = v[1], int(v[2])
                before, during = int(v[3]), int(v[4])
                cells["idle"].setdefault(s, {})[n] = {
                    "connections": n, "rss_before_kb": before, "rss_during_kb": during,
                    "bytes_per_conn": (during - before) * 1024 / n if during else None,
                    "answered": int(v[5] or 0), "held": int(v[6] or 0), "threads": int(v[7] or 0),
                    "slab_delta_kb": int(v[8]), "sock_mem_delta_pages": int(v[9]),
                    # kernel stacks and page tables: a thread's cost outside RSS
                    "kstack_pt_delta_kb": int(v[10]) if len(v) > 10 else None,
                }
            elif kind in ("active", "get"):
                s, n = v[1], int(v[2])
                cells[kind].setdefault(s, {})[n] = load_run(raw, v, hz)
            elif kind == "died":
                died.append({"server": v[1], "connections": int(v[2]), "workload": v[3]})
            elif kind == "pressure":
                pressure = None if v[2] == "-" else float(v[2])
    return machine, cells, died, pressure


def load_run(raw, v, hz):
    n = int(v[2])
    path = os.path.join(raw, os.path.basename(v[3]))
    w0, w1, ticks, ctx = float(v[4]), float(v[5]), int(v[6]), int(v[7])
    base, peak, threads = int(v[8]), int(v[9]), int(v[10] or 0)
    c = {"connections": n, "window_s": [w0, w1], "cpu_ticks": ticks, "ctxsw": ctx,
         "rss_base_kb": base, "rss_peak_kb": peak, "threads": threads,
         # the server's established connections when the window was due
         "established": int(v[11]) if len(v) > 11 and v[11] else None}
    try:
        d = json.load(open(path))
    except (OSError, ValueError):
        d = {"error": "no JSON from awaitload"}
    if "error" in d:
        c.update(error=d["error"], responses_per_s=0, errors=n, p50_s=None, p99_s=None)
        return c
    # bucket i of the timeline covers [i, i + 1) s from awaitload's start
    resp = sum(r * max(0.0, min(i + 1, w1) - max(i, w0)) for i, r in enumerate(d["timeline"]["responses"]))
    secs = w1 - w0
    cpu_s = ticks / hz
    c.update(
        requests=d["requests"],
        errors=sum(d["errors"].values()) + d["status"]["4xx"] + d["status"]["5xx"],
        error_kinds=d["errors"],
        window_responses=resp,
        responses_per_s=resp / secs,
        percent_of_ideal=100 * resp / secs / n,
        p50_s=d["latency_us"]["p50"] / 1e6,
        p99_s=d["latency_us"]["p99"] / 1e6,
        max_s=d["latency_us"]["max"] / 1e6,
        cpu_percent=100 * cpu_s / secs,
        # below 5 ticks (50 ms) the clock's resolution is the figure: none
        us_per_response=(cpu_s * 1e6 / resp) if resp and ticks >= 5 else None,
        ctxsw_per_response=(ctx / resp) if resp else None,
        bytes_per_conn=(peak - base) * 1024 / n if peak else None,
    )
    return c


# ---- derived figures ---------------------------------------------------------------


def slope(points):
    """Least-squares slope and intercept of (x, y) points."""
    pts = [(x, y) for x, y in points if y is not None]
    if len(pts) < 2:
        return None, None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if not sxx:
        return None, None
    b = sum((x - mx) * (y - my) for x, y in pts) / sxx
    return b, my - b * mx


def breaks(s, cells, died):
    """The first size at which the server broke, and how, or None."""
    sizes = sorted(set(cells["idle"].get(s, {})) | set(cells["active"].get(s, {})))
    for n in sizes:
        why = []
        i = cells["idle"].get(s, {}).get(n)
        if i and (i["answered"] < n or i["held"] < n):
            why.append(f"idle: {n - min(i['answered'], i['held'])} of {n} connections not answered or not held")
        a = cells["active"].get(s, {}).get(n)
        if a:
            if a.get("error"):
                why.append(f"/delay/1: {a['error']}")
            elif a["errors"]:
                why.append(f"/delay/1: {a['errors']} failed requests")
            if a.get("p99_s") is not None and a["p99_s"] > P99_LIMIT_S:
                why.append(f"/delay/1: p99 {a['p99_s']:.2f} s > {P99_LIMIT_S:.0f} s")
            if a.get("responses_per_s") is not None and a["responses_per_s"] < 0.9 * n:
                why.append(f"/delay/1: {a['responses_per_s']:.0f} responses/s, under 90% of the ideal {n}/s")
        g = cells["get"].get(s, {}).get(n)
        if g and (g.get("error") or g["errors"]):
            why.append(f"/get: {g.get('error') or str(g['errors']) + ' failed requests'}")
        if any(d["server"] == s and d["connections"] == n for d in died):
            why.append("the server died")
        if why:
            return {"connections": n, "why": why}
    return None


def derive(cells, died, machine):
    out = {}
    mem_total_kb = None
    try:
        mem_total_kb = float(machine["memory"].split()[0]) * 1048576
    except (KeyError, ValueError, IndexError):
        pass
    for s in ORDER:
        if s not in cells["idle"] and s not in cells["active"]:
            continue
        idle = cells["idle"].get(s, {})
        act = cells["active"].get(s, {})
        get = cells["get"].get(s, {})
        b_idle, _ = slope([(n, (c["rss_during_kb"] - c["rss_before_kb"]) * 1024) for n, c in idle.items()
                           if c["rss_during_kb"] and c["held"] == n])
        b_act, _ = slope([(n, (c["rss_peak_kb"] - c["rss_base_kb"]) * 1024) for n, c in act.items()
                          if c.get("rss_peak_kb") and not c.get("errors")])
        # CPU seconds per second against connections, each looping /delay/1:
        # the slope is the CPU of one more connection, i.e. of one response a second.
        b_cpu, _ = slope([(n, c["cpu_percent"] / 100) for n, c in act.items()
                          if c.get("cpu_percent") is not None and not c.get("errors")])
        # both ends of every connection are on this machine: slab growth / 2N;
        # from 5,000 connections up where there are (the machine is shared)
        kern = [c["slab_delta_kb"] * 1024 / (2 * n) for n, c in idle.items() if n >= 5000 and c["held"] == n] or \
            [c["slab_delta_kb"] * 1024 / (2 * n) for n, c in idle.items() if n >= 1000 and c["held"] == n]
        ks = [c["kstack_pt_delta_kb"] * 1024 / n for n, c in idle.items()
              if n >= 1000 and c.get("kstack_pt_delta_kb") is not None and c["held"] == n]
        gets = [c["us_per_response"] for c in get.values() if c.get("us_per_response")]
        d = {
            "marginal_bytes_idle": b_idle,
            "marginal_bytes_active": b_act,
            "marginal_cpu_us_per_conn_s": b_cpu * 1e6 if b_cpu is not None else None,
            "kernel_slab_bytes_per_socket": sum(kern) / len(kern) if kern else None,
            # kernel stacks and page tables grown per connection: threads' cost outside RSS
            "kernel_stack_pt_bytes_per_conn": max(ks) if ks else None,
            "get_us_per_request_median": sorted(gets)[len(gets) // 2] if gets else None,
            "breaks": breaks(s, cells, died),
        }
        # on paper: 1,000,000 connections
        if b_idle is not None:
            d["paper_1m_idle_gib"] = b_idle * ONE_MILLION / 2**30
        if b_act is not None:
            d["paper_1m_active_gib"] = b_act * ONE_MILLION / 2**30
        if b_cpu is not None and b_cpu > 0:
            d["paper_1m_delay_cores"] = b_cpu * ONE_MILLION
            d["paper_one_core_max_delay_conns"] = 1 / b_cpu
        if mem_total_kb and b_act:
            d["paper_conns_to_fill_ram_active"] = mem_total_kb * 1024 / b_act
        out[s] = d
    return out


# ---- charts ------------------------------------------------------------------------


def series(cells, kind, key):
    for s in ORDER:
        c = cells[kind].get(s)
        if not c:
            continue
        pts = [(n, c[n].get(key)) for n in sorted(c)]
        pts = [(n, v) for n, v in pts if v is not None and v > 0]
        if pts:
            yield s, pts


def panel(ax, cells, kind, key, title, ylabel, logy=True, scale=1.0, hline=None):
    for s, pts in series(cells, kind, key):
        ax.plot([n for n, _ in pts], [v * scale for _, v in pts], label=LABEL[s], **STYLE[s])
    if hline:
        ax.axhline(hline[0], color="k", linestyle=":", linewidth=1)
        ax.text(0.01, hline[0], hline[1], va="bottom", fontsize=8, transform=ax.get_yaxis_transform())
    ax.set_xscale("log")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("connections")
    ax.set_ylabel(ylabel)
    ax.grid(True, which="both", alpha=0.3)


def save(fig, path):
    fig.tight_layout()
    fig.savefig(path, format="svg")
    if os.environ.get("CLAIMS_PNG"):  # to look at them where SVG is not shown
        fig.savefig(path[:-4] + ".png", format="png", dpi=70)
    plt.close(fig)


def charts(cells, outdir, subtitle):
    made = {}
    fig, ax = plt.subplots(figsize=(7, 4.5))
    panel(ax, cells, "idle", "bytes_per_conn", "Idle keep-alive connections: VmRSS growth per connection",
          "bytes per connection (VmRSS)")
    ax.legend(fontsize=8)
    fig.suptitle(subtitle, fontsize=8)
    save(fig, os.path.join(outdir, "idle.svg"))
    made["idle"] = "idle.svg"

    fig, axs = plt.subplots(2, 2, figsize=(11, 8))
    panel(axs[0][0], cells, "active", "bytes_per_conn", "Memory per connection (peak VmRSS growth)", "bytes")
    panel(axs[0][1], cells, "active", "p99_s", "p99 latency of /delay/1 (ideal 1 s)", "seconds",
          logy=False, hline=(P99_LIMIT_S, "2 s: broken"))
    panel(axs[1][0], cells, "active", "percent_of_ideal", "Responses/s as a share of the ideal (N/s)",
          "% of N responses/s", logy=False, hline=(90, "90%: broken"))
    panel(axs[1][1], cells, "active", "cpu_percent", "Server CPU (one core = 100%)", "% of a core")
    axs[0][0].legend(fontsize=7)
    fig.suptitle("Every connection looping GET /delay/1\n" + subtitle, fontsize=10)
    save(fig, os.path.join(outdir, "active.svg"))
    made["active"] = "active.svg"

    fig, axs = plt.subplots(1, 2, figsize=(11, 4.5))
    panel(axs[0], cells, "get", "us_per_response", "Server CPU per request", "microseconds")
    panel(axs[1], cells, "get", "responses_per_s", "Throughput (one client core: a ceiling)", "requests/s")
    axs[0].legend(fontsize=7)
    fig.suptitle("Keep-alive GET /get at full speed\n" + subtitle, fontsize=10)
    save(fig, os.path.join(outdir, "get.svg"))
    made["get"] = "get.svg"

    fig, axs = plt.subplots(1, 2, figsize=(11, 4.5))
    panel(axs[0], cells, "get", "ctxsw_per_response", "GET /get at full speed", "context switches per request")
    panel(axs[1], cells, "active", "ctxsw_per_response", "Every connection looping /delay/1",
          "context switches per response")
    axs[0].legend(fontsize=7)
    fig.suptitle("Context switches (voluntary + involuntary, every server thread)\n" + subtitle, fontsize=10)
    save(fig, os.path.join(outdir, "ctxsw.svg"))
    made["ctxsw"] = "ctxsw.svg"
    return made


# ---- verdicts: sentences from the numbers ------------------------------------------


def fmt_b(v):
    if v is None:
        return "-"
    if abs(v) >= 10240:
        return f"{v / 1024:,.1f} KiB"
    return f"{v:,.0f} B"


def fmt(v, spec=",.0f", none="-"):
    return none if v is None else format(v, spec)


def at_largest(cells, kind, key, ok=lambda c: True):
    """{server: (n, value)} at the largest size each server has a value for."""
    r = {}
    for s, c in cells[kind].items():
        for n in sorted(c, reverse=True):
            if c[n].get(key) is not None and ok(c[n]):
                r[s] = (n, c[n][key])
                break
    return r


def rank(d, reverse=False):
    return sorted(d.items(), key=lambda kv: kv[1][1], reverse=reverse)


def verdict_idle(cells, der):
    r = at_largest(cells, "idle", "bytes_per_conn", lambda c: c["held"] == c["connections"])
    if not r:
        return "No idle run held all its connections."
    ranked = rank(r)
    parts = [f"{LABEL[s]} {fmt_b(v)} (at {n:,})" for s, (n, v) in ranked]
    txt = ("Userspace memory (VmRSS growth) per idle keep-alive connection at the largest size each server held "
           "every connection: " + "; ".join(parts) + ". ")
    if "awaitd" in r:
        a = r["awaitd"][1]
        others = [(s, v) for s, (_, v) in r.items() if s != "awaitd" and v > 0]
        more = [f"{LABEL[s]} {v / a:.1f}x" for s, v in sorted(others, key=lambda x: x[1]) if a > 0]
        if more:
            txt += "Against awaitd: " + ", ".join(more) + ". "
    if "threaded" in r and "nginx" in r:
        txt += ("A thread per connection pays for the stack pages it touches and the kernel's thread; the "
                "event loops pay for a connection object and its buffers. ")
    t = der.get("threaded", {}).get("kernel_stack_pt_bytes_per_conn")
    if t:
        txt += (f"The thread per connection also costs the kernel {fmt_b(t)} per connection in kernel stacks and "
                "page tables (/proc/meminfo KernelStack + PageTables growth), which VmRSS does not show. ")
    k = [d["kernel_slab_bytes_per_socket"] for d in der.values() if d.get("kernel_slab_bytes_per_socket")]
    if k:
        txt += (f"Not in these figures: the kernel's own memory per socket, measured here as the growth of the "
                f"kernel slab over both ends of the connections, about {fmt_b(sorted(k)[len(k) // 2])} per socket "
                "(median over servers, from the largest sizes; the machine is shared, so this is rough), the same "
                "for every server.")
    return txt


def verdict_active(cells, der):
    lines = []
    for s in ORDER:
        c = cells["active"].get(s)
        if not c:
            continue
        n = max(c)
        x = c[n]
        if x.get("error"):
            lines.append(f"{LABEL[s]}: at {n:,} connections awaitload failed ({x['error']}).")
            continue
        lines.append(
            f"{LABEL[s]}: at {n:,} connections {fmt(x['responses_per_s'])} responses/s "
            f"({100 * x['responses_per_s'] / n:.0f}% of ideal), p50 {fmt(x['p50_s'], '.3f')} s, "
            f"p99 {fmt(x['p99_s'], '.3f')} s, {fmt(x['cpu_percent'], '.0f')}% of a core, "
            f"{fmt_b(x['bytes_per_conn'])} per connection, {x['errors']} errors.")
    txt = " ".join(lines)
    broken = [f"{LABEL[s]} at {d['breaks']['connections']:,} ({'; '.join(d['breaks']['why'])})"
              for s, d in der.items() if d.get("breaks")]
    txt += (" Broke (errors, p99 over 2 s, under 90% of the ideal rate, or a server gone): "
            + ("; ".join(broken) if broken else "none") + ".")
    txt += (" The p99 covers the whole run, the ramp included: connections open at 5,000/s and the first "
            "round of each waits behind the accept queue, so p99 above 1.0 s at large sizes is mostly that "
            "first round; p50 is the steady state.")
    return txt


def verdict_get(cells, der):
    r = {s: d["get_us_per_request_median"] for s, d in der.items() if d.get("get_us_per_request_median")}
    if not r:
        return "No /get run had enough CPU ticks to measure."
    ranked = sorted(r.items(), key=lambda kv: kv[1])
    txt = ("Server CPU per keep-alive GET, median over sizes: "
           + "; ".join(f"{LABEL[s]} {v:.1f} us" for s, v in ranked) + ". ")
    if "awaitd" in r:
        a = r["awaitd"]
        txt += "Against awaitd: " + ", ".join(f"{LABEL[s]} {v / a:.2f}x" for s, v in ranked if s != "awaitd") + ". "
    t = at_largest(cells, "get", "responses_per_s")
    if t:
        txt += ("Throughput at the largest size: "
                + "; ".join(f"{LABEL[s]} {v:,.0f}/s (at {n:,})" for s, (n, v) in rank(t, True)) + ". ")
    txt += ("Throughput is bounded by the single client core (awaitload) and by other work on the shared "
            "machine; CPU per request is the figure that does not depend on the client. awaitd's /get renders an "
            "httpbin-style echo of the request headers (about 160 bytes); every peer returns 12 fixed bytes.")
    return txt


def verdict_ctxsw(cells):
    g = at_largest(cells, "get", "ctxsw_per_response")
    a = at_largest(cells, "active", "ctxsw_per_response")
    txt = ""
    if g:
        txt += ("Context switches per /get request at the largest size: "
                + "; ".join(f"{LABEL[s]} {v:.3f}" for s, (n, v) in rank(g)) + ". ")
    if a:
        txt += ("Per /delay/1 response: " + "; ".join(f"{LABEL[s]} {v:.3f}" for s, (n, v) in rank(a)) + ". ")
    if "threaded" in g and "awaitd" in g and g["awaitd"][1] > 0:
        txt += (f"The thread per connection switches {g['threaded'][1] / g['awaitd'][1]:,.0f} times as often as "
                "awaitd per /get: each request wakes its own thread, while an event loop serves every ready "
                "connection in one wake-up. This is the article's \"context switching cost\", counted.")
    return txt


def paper(der, cells, machine):
    rows = []
    for s, d in der.items():
        rows.append({
            "server": s,
            "marginal_bytes_idle": d.get("marginal_bytes_idle"),
            "marginal_bytes_active": d.get("marginal_bytes_active"),
            "marginal_cpu_us_per_conn_s": d.get("marginal_cpu_us_per_conn_s"),
            "paper_1m_idle_gib": d.get("paper_1m_idle_gib"),
            "paper_1m_active_gib": d.get("paper_1m_active_gib"),
            "paper_1m_delay_cores": d.get("paper_1m_delay_cores"),
            "paper_one_core_max_delay_conns": d.get("paper_one_core_max_delay_conns"),
            "breaks": d.get("breaks"),
        })
    return rows


def verdict_paper(der, machine):
    k = [d["kernel_slab_bytes_per_socket"] for d in der.values() if d.get("kernel_slab_bytes_per_socket")]
    kern = sorted(k)[len(k) // 2] if k else None
    a = der.get("awaitd", {})
    txt = ("On paper, 1,000,000 connections, from the slopes above (least squares of RSS growth and of CPU "
           "against the number of connections; not measured: this machine stops at 20,000 descriptors). ")
    if a.get("marginal_bytes_idle") is not None:
        txt += f"awaitd: {a['paper_1m_idle_gib']:.2f} GiB of its own memory for 1,000,000 idle connections"
        if a.get("paper_1m_active_gib") is not None:
            txt += f", {a['paper_1m_active_gib']:.2f} GiB with every one looping /delay/1"
        txt += ". "
        if kern:
            txt += (f"The kernel's memory per socket ({fmt_b(kern)}, slab, measured) puts another "
                    f"{kern * ONE_MILLION / 2**30:.1f} GiB under them, before any socket buffer holds data, so "
                    f"at a million connections the kernel's socket memory, not awaitd's own, is the larger share"
                    if kern > a["marginal_bytes_idle"] else
                    f"The kernel adds about {kern * ONE_MILLION / 2**30:.1f} GiB of slab for the sockets")
            txt += ". "
    if a.get("paper_one_core_max_delay_conns"):
        txt += (f"CPU is the limit before memory for active connections: at "
                f"{a['marginal_cpu_us_per_conn_s']:.1f} us of server CPU per connection-second, one core serves "
                f"about {a['paper_one_core_max_delay_conns']:,.0f} connections each asking once a second, and "
                f"1,000,000 would need about {a['paper_1m_delay_cores']:.0f} cores (the `[server] workers` part of "
                "issue 18). ")
    t = der.get("threaded", {})
    if t.get("marginal_bytes_idle") is not None:
        txt += (f"A thread per connection would need {t['paper_1m_idle_gib']:.1f} GiB of RSS for 1,000,000 idle "
                f"connections, plus {fmt_b(t.get('kernel_stack_pt_bytes_per_conn'))} each of kernel stacks and "
                f"page tables, and a million threads for the kernel to schedule (kernel.pid_max is "
                f"{machine.get('pid_max', '?')} and kernel.threads-max {machine.get('threads_max', '?')} here). ")
    txt += ("Past 28,000 or so connections from one client address to one server port the client runs out of "
            "ports; a million needs many client addresses (127.0.0.0/8 has them) and fs.nr_open raised.")
    return txt


# ---- outputs -----------------------------------------------------------------------

CSV_FIELDS = ["workload", "server", "connections", "bytes_per_conn", "responses_per_s", "p50_s", "p99_s",
              "cpu_percent", "us_per_response", "ctxsw_per_response", "errors", "answered", "held", "threads",
              "rss_before_kb", "rss_during_kb", "rss_base_kb", "rss_peak_kb", "slab_delta_kb"]


def write_csv(cells, path):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        for kind in ("idle", "active", "get"):
            for s in ORDER:
                for n, c in sorted(cells[kind].get(s, {}).items()):
                    w.writerow({"workload": kind, "server": s, **c})


def table_md(cells, kind, cols):
    out = io.StringIO()
    out.write("| server | connections | " + " | ".join(h for h, _, _ in cols) + " |\n")
    out.write("| --- | ---: | " + " | ".join("---:" for _ in cols) + " |\n")
    for s in ORDER:
        for n, c in sorted(cells[kind].get(s, {}).items()):
            out.write(f"| {s} | {n:,} | " + " | ".join(f(c.get(k)) for _, k, f in cols) + " |\n")
    return out.getvalue()


def marginal_md(der):
    out = io.StringIO()
    out.write("| server | bytes per idle connection | bytes per active connection | kernel stacks + page tables "
              "per connection | CPU per connection-second (/delay/1) | 1M idle (own RSS) | 1M active (own RSS) | "
              "cores for 1M looping /delay/1 | active connections to fill this machine's RAM | breaks at |\n")
    out.write("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n")
    for s, d in der.items():
        b = d.get("breaks")
        out.write(
            f"| {s} | {fmt_b(d.get('marginal_bytes_idle'))} | {fmt_b(d.get('marginal_bytes_active'))} | "
            f"{fmt_b(d.get('kernel_stack_pt_bytes_per_conn'))} | "
            f"{fmt(d.get('marginal_cpu_us_per_conn_s'), '.1f')} us | {fmt(d.get('paper_1m_idle_gib'), '.2f')} GiB | "
            f"{fmt(d.get('paper_1m_active_gib'), '.2f')} GiB | {fmt(d.get('paper_1m_delay_cores'), '.1f')} | "
            f"{fmt(d.get('paper_conns_to_fill_ram_active'), ',.0f')} | "
            + (f"{b['connections']:,}: {'; '.join(b['why'])}" if b else "not within the sizes run") + " |\n")
    return out.getvalue()


F_B = fmt_b
F_I = lambda v: fmt(v, ",.0f")  # noqa: E731
F_S = lambda v: fmt(v, ".3f")  # noqa: E731
F_1 = lambda v: fmt(v, ".1f")  # noqa: E731
F_3 = lambda v: fmt(v, ".3f")  # noqa: E731

IDLE_COLS = [("bytes/conn", "bytes_per_conn", F_B), ("answered", "answered", F_I), ("held", "held", F_I),
             ("threads", "threads", F_I), ("VmRSS before kB", "rss_before_kb", F_I),
             ("VmRSS held kB", "rss_during_kb", F_I)]
ACTIVE_COLS = [("bytes/conn", "bytes_per_conn", F_B), ("responses/s", "responses_per_s", F_I),
               ("p50 s", "p50_s", F_S), ("p99 s", "p99_s", F_S), ("CPU %", "cpu_percent", F_1),
               ("us/response", "us_per_response", F_1), ("ctxsw/response", "ctxsw_per_response", F_3),
               ("errors", "errors", F_I), ("threads", "threads", F_I)]
GET_COLS = [("requests/s", "responses_per_s", F_I), ("us/request", "us_per_response", F_1),
            ("ctxsw/request", "ctxsw_per_response", F_3), ("p99 s", "p99_s", F_S), ("CPU %", "cpu_percent", F_1),
            ("errors", "errors", F_I)]


def md_to_html_table(md):
    rows = [r.strip().strip("|").split("|") for r in md.strip().splitlines()]
    out = ["<table>"]
    for i, r in enumerate(rows):
        if i == 1:
            continue
        tag = "th" if i == 0 else "td"
        out.append("<tr>" + "".join(f"<{tag}>{html.escape(x.strip())}</{tag}>" for x in r) + "</tr>")
    out.append("</table>")
    return "\n".join(out)


def main():
    raw, outdir, report = sys.argv[1:4]
    machine, cells, died, pressure = load(raw)
    der = derive(cells, died, machine)
    quick = machine.get("quick") == "1"
    subtitle = (f"{machine.get('date', '')}, {machine.get('cpu', '')}, server on CPU 0, client on CPU 1"
                + (" -- QUICK RUN: rough figures" if quick else ""))
    os.makedirs(outdir, exist_ok=True)
    svgs = charts(cells, outdir, subtitle)
    verdicts = {
        "idle": verdict_idle(cells, der),
        "active": verdict_active(cells, der),
        "get": verdict_get(cells, der),
        "ctxsw": verdict_ctxsw(cells),
        "paper": verdict_paper(der, machine),
    }
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"machine": machine, "cpu_pressure_percent": pressure, "cells": cells,
                   "derived": der, "verdicts": verdicts, "died": died}, f, indent=1, sort_keys=True)
    write_csv(cells, os.path.join(outdir, "results.csv"))

    machine_md = "| | |\n| --- | --- |\n" + "".join(f"| {k} | {v} |\n" for k, v in machine.items())
    if pressure is not None:
        machine_md += f"| CPU pressure during the run | {pressure:.0f}% of the time some task waited for a CPU |\n"
    sections = [
        ("idle", "Idle keep-alive connections", table_md(cells, "idle", IDLE_COLS)),
        ("active", "Every connection looping GET /delay/1", table_md(cells, "active", ACTIVE_COLS)),
        ("get", "Keep-alive GET /get at full speed", table_md(cells, "get", GET_COLS)),
        ("ctxsw", "Context switches per request", ""),
    ]
    md = io.StringIO()
    md.write(f"Run: {machine.get('date')}{' (QUICK: rough figures)' if quick else ''}\n\n")
    for key, title, table in sections:
        md.write(f"### {title}\n\n![{title}](claims/{svgs[key]})\n\n{verdicts[key]}\n\n{table}\n")
    md.write("### The cost of growth\n\n" + marginal_md(der) + "\n" + verdicts["paper"] + "\n\n")
    md.write("### Machine and versions\n\n" + machine_md)
    with open(os.path.join(outdir, "summary.md"), "w") as f:
        f.write(md.getvalue())

    h = io.StringIO()
    h.write("<!doctype html><html><head><meta charset='utf-8'><title>awaitd: the claim, measured</title>"
            "<style>body{font-family:sans-serif;max-width:1150px;margin:1em auto;line-height:1.4}"
            "table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;"
            "padding:2px 6px;text-align:right}th{background:#eee}.quick{color:#b00;font-weight:bold}"
            "svg{max-width:100%;height:auto}</style></head><body>")
    h.write("<h1>Event loop vs threads vs asyncio, 100 to 19,000 connections</h1>")
    if quick:
        h.write("<p class='quick'>QUICK RUN (--quick): short windows and small sizes; the figures are rough.</p>")
    h.write(f"<p>{html.escape(machine.get('date', ''))}. Servers pinned to CPU 0, clients (holdconns, awaitload) "
            "to CPU 1. Raw figures: <a href='claims/results.json'>results.json</a>, "
            "<a href='claims/results.csv'>results.csv</a>, <a href='claims/raw/'>raw/</a>.</p>")
    for key, title, table in sections:
        with open(os.path.join(outdir, svgs[key])) as f:
            svg = f.read()
        svg = svg[svg.find("<svg"):]
        h.write(f"<h2>{html.escape(title)}</h2>{svg}<p>{html.escape(verdicts[key])}</p>")
        if table:
            h.write(md_to_html_table(table))
    h.write("<h2>The cost of growth</h2>" + md_to_html_table(marginal_md(der))
            + f"<p>{html.escape(verdicts['paper'])}</p>")
    h.write("<h2>Machine and versions</h2>" + md_to_html_table(machine_md) + "</body></html>")
    with open(report, "w") as f:
        f.write(h.getvalue())

    print(md.getvalue())


if __name__ == "__main__":
    main()
