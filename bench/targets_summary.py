"""Summary of one scripts/bench-targets run: each figure beside its target.

    python3 bench/targets_summary.py OUT_DIR
"""
import glob
import json
import os
import sys

out = sys.argv[1]


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return None


def lg(name):
    return load(os.path.join(out, name, "result.json"))


def engine_append_mbps(key, nbytes):
    p = os.path.join(out, "engine", "raw", "criterion", f"{key}.json")
    e = load(p)
    if not e:
        return None
    return nbytes / (e["mean"]["point_estimate"] / 1e9) / 1e6


def fio_sync_p99_us():
    s = load(os.path.join(out, "engine", "raw", "fio-fdatasync.json"))
    if not s:
        return None
    return s["jobs"][0]["sync"]["lat_ns"]["percentile"]["99.000000"] / 1e3


def verdict(ok):
    return "met" if ok else "**missed**"


rows = []
p100 = lg("produce-100b-max")
p1k = lg("produce-1kib-max")
p1k2 = lg("produce-1kib-256k")
tail = lg("tail-consume-1kib")
half = lg("e2e-100b-half")
cold = load(os.path.join(out, "cold-read", "cold-read.json"))
eng_1m = engine_append_mbps("append_batch_1024KiB", 1 << 20)
eng_16x16 = engine_append_mbps("group_commit_batch_16KiB_16-appenders", 16 << 10)
sync99 = fio_sync_p99_us()

if p100:
    rate = p100["loadgen"]["publishRecordsPerSec"]
    rows.append(("5", "100 B records, 16 partitions, acks=1, flush=batch: >= 4 M msg/s",
                 f"{rate / 1e6:.2f} M msg/s", verdict(rate >= 4e6)))
    us = p100["loadgen"].get("brokerCpuUsPerRecordProduced")
    if us is not None:
        rows.append(("3", "broker CPU <= 0.15 CPU-us per 100 B record produced",
                     f"{us:.3f} CPU-us", verdict(us <= 0.15)))
if p1k:
    mbs = p1k["loadgen"]["publishMBPerSec"]
    rows.append(("5", "1 KiB records: >= 1 GB/s produced (4 producers, 1 MiB batches)",
                 f"{mbs:,.0f} MB/s", verdict(mbs >= 1000)))
    us = p1k["loadgen"].get("brokerCpuUsPerRecordProduced")
    if us is not None:
        rows.append(("3", "broker CPU <= 0.35 CPU-us per 1 KiB record produced",
                     f"{us:.3f} CPU-us", verdict(us <= 0.35)))
    if eng_1m:
        rows.append(("3", "1 KiB produce within 20% of the engine's append throughput (1 MiB batches, flush=batch)",
                     f"{mbs:,.0f} vs engine {eng_1m:,.0f} MB/s ({mbs / eng_1m:.0%})",
                     verdict(mbs >= 0.8 * eng_1m)))
if p1k2:
    mbs = p1k2["loadgen"]["publishMBPerSec"]
    line = f"{mbs:,.0f} MB/s"
    if eng_16x16:
        line += f"; engine, 16 appenders x 16 KiB: {eng_16x16:,.0f} MB/s"
    rows.append(("3/5", "1 KiB records, 2 producers x 256 KiB batches (for reference)", line, ""))
if tail:
    mbs = tail["loadgen"]["consumeMBPerSec"]
    rows.append(("3/5", "consume from the tail >= 1.5 GB/s", f"{mbs:,.0f} MB/s", verdict(mbs >= 1500)))
if half:
    p99 = half["aggregatedPublishLatency99pct"]
    e99 = half["aggregatedEndToEndLatency99pct"]
    if sync99 is not None:
        rows.append(("5", "half the max rate: publish p99 within 1 ms of fio's fdatasync p99",
                     f"{p99:,.2f} ms (fio fdatasync p99 {sync99 / 1e3:.2f} ms)",
                     verdict(p99 <= sync99 / 1e3 + 1.0)))
    rows.append(("5", "half the max rate: end-to-end p99 < 3 ms", f"{e99:,.2f} ms", verdict(e99 < 3.0)))
if cold:
    s = cold["summary"]
    rows.append(("3", "a 1 GB cold read raises produce p99 on its shard by <= 20%",
                 f"p99 {s['publish_p99_ms_alone']:.2f} ms alone, {s['publish_p99_ms_beside']:.2f} ms beside ({s['ratio']:.2f}x)",
                 verdict(s["ratio"] is not None and s["ratio"] <= 1.2)))

print("| issue | target | this run | |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
machine = os.path.join(out, "engine", "raw", "machine.txt")
if os.path.exists(machine):
    print()
    print("Machine (from engine/raw/machine.txt):")
    print()
    for line in open(machine):
        print("    " + line.rstrip())
