#!/usr/bin/env python3
"""Turn the samples benches/run.sh records into results.json, a Markdown
table and a PNG chart.

run.sh appends one JSON object per measurement to OUT/samples.jsonl
({"target", "rep", "metric", "value"}) and writes OUT/meta.json (mode,
command, machine, the targets in run order). This script is the only place
that knows what a metric means (label, unit, which direction is better, the
targets issues 7 and 14 set for it), so run.sh stays a list of things to time.

Subcommands:
  report.py fio FILE.json          one line of JSON: bandwidth, IOPS and
                                   latency summed/averaged over the jobs of a
                                   fio --output-format=json file
  report.py build OUTDIR           samples.jsonl + meta.json -> results.json,
                                   results.md, results.png

Medians, not means: two runs on a shared 2-core machine are noisy and a
median of an odd count ignores one outlier; with two runs it is their mean.
"""

import json
import os
import statistics
import sys

# What each metric means. better: "higher" or "lower". target: a list of
# (peer, ratio) from issue 14 (issue 7's before it): zsfs's median over the
# peer's median must be >= ratio (higher-is-better) or <= ratio
# (lower-is-better); a target whose peer did not run is not judged. group: which table the
# row goes in; rows appear in the order defined here (issue 7's order first).
METRICS = {}


def _m(key, label, unit, better="higher", target=(), group="main"):
    if target and isinstance(target[0], str):
        target = [target]
    METRICS[key] = {"label": label, "unit": unit, "better": better, "target": list(target), "group": group}


ZRAM, CEIL, CEIL_DIO = "zram", "fuse-ceiling", "fuse-ceiling-dio"
# Not a mount: the tree compressed page by page with zstd -3, as a zram
# set up with zstd would hold it (benches/zram_zstd.rs; issue 13).
ZRAM_ZSTD = "zram-zstd-est"


C60 = "60 % compressible"
_m("seq_write_c60", "seq write 1 MiB", "MB/s", target=(ZRAM, 1.0))
_m("seq_read_c60", "seq read 1 MiB", "MB/s", target=(ZRAM, 1.0))
_m("reread_c60", "read the same file again (cat)", "MB/s", target=(ZRAM, 0.8))
_m("randread_c60", "rand read 4 KiB, 2 jobs, right after writing", "IOPS", target=(ZRAM, 0.8))
_m("randwrite_c60", "rand write 4 KiB, 2 jobs", "IOPS", target=(ZRAM, 0.75))
_m("seq_write_direct_c60", "seq write 1 MiB, direct=1", "MB/s", target=(ZRAM, 0.8))
_m("seq_read_direct_c60", "seq read 1 MiB, direct=1", "MB/s", target=(ZRAM, 0.8))
_m("randwrite_direct_c60", "rand write 4 KiB, direct=1, 2 jobs on one file", "IOPS",
   target=[(ZRAM, 0.5), (CEIL_DIO, 1.0)])
_m("randread_direct_c60", "rand read 4 KiB, direct=1, 2 jobs", "IOPS")
_m("cp_tree", "cp -a real tree + sync", "MB/s", target=[(ZRAM, 1.0), (CEIL, 1.0)])
_m("tar_small", "tar -xf small files + sync", "files/s", target=[(ZRAM, 0.5), (CEIL, 1.0)])
_m("mem_tree", "memory holding the real tree", "MiB", "lower", target=(ZRAM, 0.9))
_m("ratio_tree", "real tree bytes / memory", "x")
_m("zsfs_mem_used_total", "zsfs control file mem_used_total", "MiB", "lower")
_m("mem_tree_idle", "memory holding the real tree once idle (zsfs: recompressed)", "MiB", "lower",
   target=[(ZRAM, 0.6), (ZRAM_ZSTD, 0.8)])
_m("zsfs_idle_mem_used_total", "zsfs mem_used_total once idle", "MiB", "lower")
_m("zsfs_overhead_idle", "zsfs daemon RSS - mem_used_total once idle", "MiB", "lower")
_m("recomp_secs", "zsfs: recompress idle, twice (the whole tree)", "s", "lower")
_m("read_tree_idle", "read the idle tree back (tar -cf - | cat)", "MB/s", target=(ZRAM, 0.5))
_m("randread_idle", "rand read 4 KiB, 2 jobs, of idle real data (zsfs: recompressed)", "IOPS")
_m("randread_idle_p50", "rand read 4 KiB of idle real data: p50 latency", "us", "lower")
_m("randread_idle_p99", "rand read 4 KiB of idle real data: p99 latency", "us", "lower")
_m("rm_tree", "rm -rf real tree", "s", "lower", target=(ZRAM, 2.0))
_m("rm_small", "rm -rf small files + sync", "files/s", target=(CEIL, 1.0))
for c, g in (("c60", "main"), ("c0", "incompressible")):
    if c == "c0":
        _m("seq_write_c0", "seq write 1 MiB", "MB/s", group=g)
        _m("seq_read_c0", "seq read 1 MiB", "MB/s", group=g)
        _m("randread_c0", "rand read 4 KiB, 2 jobs", "IOPS", group=g)
        _m("randwrite_c0", "rand write 4 KiB, 2 jobs", "IOPS", group=g)
        _m("seq_write_direct_c0", "seq write 1 MiB, direct=1", "MB/s", group=g)
        _m("seq_read_direct_c0", "seq read 1 MiB, direct=1", "MB/s", group=g)
    _m(f"randrw_{c}", "rand 70/30 read/write 4 KiB, 2 jobs", "IOPS", group=g)
    if c == "c0":  # the c60 ones, with their targets, are above
        _m(f"randread_direct_{c}", "rand read 4 KiB, 2 jobs, direct=1", "IOPS", group=g)
        _m(f"randwrite_direct_{c}", "rand write 4 KiB, 2 jobs, direct=1", "IOPS", group=g)
    _m(f"randrw_direct_{c}", "rand 70/30 read/write 4 KiB, direct=1", "IOPS", group=g)
    _m(f"randread_lat_{c}", "rand read 4 KiB: mean latency", "us", "lower", group=g)
    _m(f"randread_p50_{c}", "rand read 4 KiB: p50 latency", "us", "lower", group=g)
    _m(f"randread_p99_{c}", "rand read 4 KiB: p99 latency", "us", "lower", group=g)
    _m(f"randwrite_lat_{c}", "rand write 4 KiB: mean latency", "us", "lower", group=g)
    _m(f"randwrite_p99_{c}", "rand write 4 KiB: p99 latency", "us", "lower", group=g)
# writeback mode (issue 4)
_m("wb_write", "write 4x pool limit, 60 % compressible", "MB/s")
_m("wb_read", "read it all back", "MB/s")
_m("wb_rss_write", "daemon RSS after the write", "MiB", "lower")
_m("wb_rss_read", "daemon RSS after the read", "MiB", "lower")
_m("wb_hwm", "daemon peak RSS (VmHWM)", "MiB", "lower")
_m("wb_bd_writes", "bd_writes (pages written to backing)", "pages")
_m("wb_bd_reads", "bd_reads (pages read back)", "pages")
_m("zipf_iops", "zipf rand read 4 KiB direct, data 4x limit", "IOPS")
_m("zipf_mem_share", "zipf reads served from memory", "%")
# blocksize mode (issue 3)
_m("bs_ratio_tree", "real tree bytes / mem_used_total", "x")
_m("bs_mem_tree", "daemon RSS holding the real tree", "MiB", "lower")
_m("bs_randread_lat", "rand read 4 KiB direct: mean latency", "us", "lower")
_m("bs_randread_p99", "rand read 4 KiB direct: p99 latency", "us", "lower")
_m("bs_randwrite_lat", "rand write 4 KiB direct: mean latency", "us", "lower")
_m("bs_randwrite_p99", "rand write 4 KiB direct: p99 latency", "us", "lower")
GROUP_TITLES = {
    "main": "60 %-compressible data (fio) and real files",
    "incompressible": "Incompressible data (fio)",
}

TARGET_LABELS = {"tmpfs": "tmpfs", "zram": "zram-lz4 + ext4", "zsfs": "zsfs",
                 CEIL: "memfs_ll (FUSE ceiling)", CEIL_DIO: "memfs_ll fuse_dio",
                 ZRAM_ZSTD: "zram-zstd (estimate)"}


def fio_summary(path):
    """Sum bandwidth and IOPS over jobs (group_reporting gives one job, but
    do not rely on it); latency: the IO-weighted mean of completion latency
    and the worst p99 of any job."""
    with open(path) as f:
        text = f.read()
    # fio may print warnings before the JSON object.
    data = json.loads(text[text.index("{"):])
    out = {"bw_MBps": 0.0, "iops": 0.0, "read_iops": 0.0, "write_iops": 0.0}
    for d in ("read", "write"):
        lat_sum, n, p99, p50 = 0.0, 0, 0.0, 0.0
        for job in data["jobs"]:
            s = job[d]
            out["bw_MBps"] += s["bw_bytes"] / 1e6
            out["iops"] += s["iops"]
            out[f"{d}_iops"] += s["iops"]
            ios = s.get("total_ios", 0)
            clat = s.get("clat_ns", {})
            if ios and clat.get("mean") is not None:
                lat_sum += clat["mean"] * ios
                n += ios
            pct = clat.get("percentile", {})
            p99 = max(p99, pct.get("99.000000", 0.0))
            p50 = max(p50, pct.get("50.000000", 0.0))
        out[f"{d}_lat_us"] = lat_sum / n / 1e3 if n else None
        out[f"{d}_p99_us"] = p99 / 1e3 if n else None
        out[f"{d}_p50_us"] = p50 / 1e3 if n else None
        out[f"{d}_ios"] = n
    return out


def load(outdir):
    with open(os.path.join(outdir, "meta.json")) as f:
        meta = json.load(f)
    samples = []
    path = os.path.join(outdir, "samples.jsonl")
    if os.path.exists(path):
        with open(path) as f:
            samples = [json.loads(line) for line in f if line.strip()]
    return meta, samples


def aggregate(meta, samples):
    """metric -> target -> {"runs": [...], "median": x}; metrics in first-seen order."""
    res = {}
    for s in samples:
        if s["value"] is None:
            continue
        res.setdefault(s["metric"], {}).setdefault(s["target"], {"runs": []})["runs"].append(s["value"])
    for per in res.values():
        for v in per.values():
            v["median"] = statistics.median(v["runs"])
    order = list(METRICS)
    return dict(sorted(res.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))


def fmt(x):
    if x is None:
        return "–"
    a = abs(x)
    if a >= 100:
        return f"{x:,.0f}"
    if a >= 10:
        return f"{x:.1f}"
    return f"{x:.2f}"


def ratio(res_m, a, b):
    try:
        return res_m[a]["median"] / res_m[b]["median"]
    except (KeyError, ZeroDivisionError):
        return None


def table(meta, res, keys):
    targets = meta["targets"]
    peers = [t for t in ("tmpfs", ZRAM, ZRAM_ZSTD, CEIL, CEIL_DIO) if t in targets and "zsfs" in targets]
    head = ["workload", "unit"] + [TARGET_LABELS.get(t, t) for t in targets]
    head += [f"zsfs / {t}" for t in peers]
    has_targets = any(p for k in keys for p, _ in METRICS.get(k, {}).get("target", []) if p in peers)
    if has_targets:
        head += ["target", "met"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key in keys:
        per = res[key]
        m = METRICS.get(key, {"label": key, "unit": "", "better": "higher", "target": []})
        row = [m["label"], m["unit"] + (" ↓" if m["better"] == "lower" else "")]
        row += [fmt(per[t]["median"]) if t in per else "–" for t in targets]
        for p in peers:
            r = ratio(per, "zsfs", p)
            row.append(f"{r:.2f}x" if r is not None else "–")
        if has_targets:
            want, met = [], []
            op = ">=" if m["better"] == "higher" else "<="
            for peer, goal in m.get("target", []):
                if peer not in peers:
                    continue
                r = ratio(per, "zsfs", peer)
                ok = r is not None and (r >= goal if m["better"] == "higher" else r <= goal)
                want.append(f"{op} {goal:.2f}x {peer}")
                met.append(("yes" if ok else "**no**") if r is not None else "–")
            row += ["; ".join(want), "; ".join(met)]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def markdown(meta, res):
    groups = {}
    for key in res:
        groups.setdefault(METRICS.get(key, {}).get("group", "main"), []).append(key)
    lines = []
    for g, keys in groups.items():
        if len(groups) > 1:
            lines += [f"**{GROUP_TITLES.get(g, g)}**", ""]
        lines += table(meta, res, keys)
        lines.append("")
    reps = max((len(v["runs"]) for per in res.values() for v in per.values()), default=0)
    p = meta.get("params", {})
    if meta["mode"] == "writeback":
        what = f"pool_limit={p.get('pool_limit')}, data 4x that, zipf {p.get('runtime_s')} s"
    elif meta["mode"] == "blocksize":
        what = f"random file {p.get('rand_size')}, {p.get('runtime_s')} s per random job"
    else:
        what = (f"sequential files {p.get('seq_size')}, random file {p.get('rand_size')}, "
                f"{p.get('runtime_s')} s per random job")
    lines.append(
        f"Median of {reps} run(s) per target; ↓: lower is better. Mode `{meta['mode']}` "
        f"({what}, {p.get('settle_s', '?')} s pause after every delete), "
        f"{meta.get('date', '')}, kernel {meta.get('kernel', '?')}, {meta.get('cpus', '?')} CPUs, "
        f"{meta.get('ram_gib', '?')} GiB RAM, {meta.get('fio', 'fio ?')}, zsfs {meta.get('git', '?')}. "
        f"Real tree: {meta['tree']['files']:,} files, {meta['tree']['bytes'] / 1e6:,.0f} MB; "
        f"small-file archive: {meta['tree']['small_files']:,} files."
    )
    if meta.get("notes"):
        lines.append("")
        lines += [f"- {n}" for n in meta["notes"]]
    lines.append("")
    lines.append(f"Command: `{meta.get('command', '?')}`")
    return "\n".join(lines) + "\n"


def chart(meta, res, path):
    """Horizontal bars from 1.0: each target's median relative to a reference
    target (zram when present), inverted for lower-is-better metrics so that
    right is always better; issue 7's target ratios as black ticks. Only the
    first table's throughput rows: latency rows repeat the IOPS ones."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib missing, no chart (run.sh installs it)", file=sys.stderr)
        return False
    if meta["mode"] == "blocksize":
        return blocksize_chart(plt, meta, res, path)
    targets = meta["targets"]
    ref = "zram" if "zram" in targets else targets[0]
    shown = [t for t in targets if t != ref]
    keys = [
        k
        for k, per in res.items()
        if ref in per and per[ref]["median"] and len(per) > 1
        and METRICS.get(k, {}).get("group", "main") == "main"
        and METRICS.get(k, {}).get("unit") != "us"
        and k != "ratio_tree"
    ]
    if not keys or not shown:
        return False
    n = len(shown)
    height = 0.8 / n
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(keys) + 1.6))
    colors = {"tmpfs": "#8da0cb", "zsfs": "#fc8d62"}
    palette = ["#fc8d62", "#8da0cb", "#a6d854", "#e78ac3", "#ffd92f", "#e5c494"]
    lo, hi = 1.0, 1.0
    for i, t in enumerate(shown):
        ys, xs = [], []
        for j, k in enumerate(keys):
            per = res[k]
            if t not in per or not per[t]["median"]:
                continue
            r = per[t]["median"] / per[ref]["median"]
            if METRICS.get(k, {}).get("better") == "lower":
                r = 1 / r
            ys.append(j + (i - (n - 1) / 2) * height)
            xs.append(r)
            lo, hi = min(lo, r), max(hi, r)
        ax.barh(ys, [x - 1 for x in xs], left=1, height=height, label=TARGET_LABELS.get(t, t),
                color=colors.get(t, palette[i % len(palette)]))
        for y, x in zip(ys, xs):
            ax.annotate(f"{x:.2f}", (x, y), xytext=(3 if x >= 1 else -3, 0), textcoords="offset points",
                        ha="left" if x >= 1 else "right", va="center", fontsize=7)
    for j, k in enumerate(keys):
        for peer, goal in METRICS.get(k, {}).get("target", []):
            if peer == ref and "zsfs" in shown:
                r = goal if METRICS[k]["better"] == "higher" else 1 / goal
                ax.plot([r, r], [j - 0.45, j + 0.45], color="black", linewidth=2)
                lo, hi = min(lo, r), max(hi, r)
    ax.set_yticks(range(len(keys)))
    ax.set_yticklabels([METRICS.get(k, {"label": k})["label"] for k in keys], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlim(lo / 1.6, hi * 1.6)
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"relative to {TARGET_LABELS.get(ref, ref)} = 1 (log scale; right is better; black tick: zsfs target)")
    sub = " (60 %-compressible data, real files)" if meta["mode"] in ("quick", "full") else ""
    ax.set_title(f"zsfs benchmark, {meta['mode']} mode, {meta.get('date', '')}{sub}", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def blocksize_chart(plt, meta, res, path):
    """The trade-off itself: memory holding the real tree against 4 KiB
    random read and write latency, one point per block size."""
    mem = res.get("bs_mem_tree", {})
    fig, ax = plt.subplots(figsize=(8, 5))
    drew = False
    for key, label, color in (("bs_randread_lat", "4 KiB random read", "#66c2a5"),
                              ("bs_randwrite_lat", "4 KiB random write", "#fc8d62")):
        lat = res.get(key, {})
        pts = [(lat[t]["median"], mem[t]["median"], t) for t in meta["targets"] if t in lat and t in mem]
        if not pts:
            continue
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", color=color, label=label)
        for x, y, t in pts:
            ax.annotate(t.replace("bs-", ""), (x, y), xytext=(4, 4), textcoords="offset points", fontsize=8)
        drew = True
    if not drew:
        plt.close(fig)
        return False
    ax.set_xscale("log")
    ax.set_xlabel("mean latency, direct=1, 2 jobs (us, log scale)")
    ax.set_ylabel("daemon RSS holding the real tree (MiB)")
    ax.set_title(f"zsfs block_size trade-off, {meta.get('date', '')}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def build(outdir):
    meta, samples = load(outdir)
    res = aggregate(meta, samples)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "metrics": METRICS, "results": res, "samples": samples}, f, indent=1)
    md = markdown(meta, res)
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    png = chart(meta, res, os.path.join(outdir, "results.png"))
    sys.stdout.write(md)
    print(f"\nwritten: {outdir}/results.json, results.md" + (", results.png" if png else " (no chart)"))


def main(argv):
    if len(argv) == 3 and argv[1] == "fio":
        print(json.dumps(fio_summary(argv[2])))
    elif len(argv) == 3 and argv[1] == "build":
        build(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
