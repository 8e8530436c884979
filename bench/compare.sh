#!/usr/bin/env bash
# Runs durable's scenarios 1-3 (throughput, latency, raw limit; release build) and each peer's
# bench from the shared peers folder (Restate, DBOS, Temporal's dev server) in one go on this
# machine, then prints the ratios against the targets of issue #8.
#
#   bash bench/compare.sh                      # all peers
#   PEERS=restate bash bench/compare.sh        # a subset (comma-separated: restate,dbos,temporal)
#   SKIP_INSTALL=1 bash bench/compare.sh       # peers installed before: do not run install.sh
#   STATE_KIB=0,64 PEERS=restate bash bench/compare.sh
#       # state size instead (issue #23): our scenario 8 (`--only state`, 100 in flight, the blob
#       # as `x` repeated and as random letters) and Restate's bench with BLOB_KB set to each size
#
# Environment: PEERS_DIR (default ../shared/peers beside the repo), WORK (default
# target/compare: the peers are copied there, since their folder is read-only, and installed
# there by their own install.sh; nothing of theirs is committed), WORKFLOWS (our N, default
# 10000), N5000 (peers' N=5000 run, default 1; TEMPORAL_N5000 default 0), CRASH_RUNS (peers' crash repetitions, default 1: the crash test is not compared here),
# INSTALL_TIMEOUT / BENCH_TIMEOUT (seconds per peer, default 1800 / 1800).
# First installs on this 2-core machine took: Restate ~5 min (npm + a Rust build of its SDK
# service), DBOS ~1 min (pip), Temporal ~15 s (pip; the CLI binary ships in its wheel).
# A peer that cannot be installed or run is reported as such and the others go on.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERS_DIR=${PEERS_DIR:-$ROOT/../shared/peers}
WORK=${WORK:-$ROOT/target/compare}
PEERS=${PEERS:-restate,dbos,temporal}
WORKFLOWS=${WORKFLOWS:-10000}
export CRASH_RUNS=${CRASH_RUNS:-1}
mkdir -p "$WORK/results"
RES=$WORK/results
rm -f "$RES"/*.jsonl "$RES"/*.status

echo "== machine: $(nproc) cpus, $(free -g | awk '/Mem:/ {print $2}') GiB, kernel $(uname -r); $(uptime)"

echo "== durable: cargo build --release -p durable-bench"
if ! (cd "$ROOT" && cargo build --release -q -p durable-bench); then
  echo "durable-bench did not build" >&2
  exit 1
elif [ -n "${STATE_KIB:-}" ]; then
  "$ROOT/target/release/durable-bench" --only state --state-kib "$STATE_KIB" --state-blob x,random \
    --in-flight 100 --workflows "${STATE_WORKFLOWS:-2000}" --json "$RES/durable.json" | tee "$RES/durable.txt"
else
  "$ROOT/target/release/durable-bench" --only throughput,latency,limit --workflows "$WORKFLOWS" \
    --json "$RES/durable.json" | tee "$RES/durable.txt"
fi

run_peer() { # run_peer NAME
  local name=$1 dir=$WORK/peers/$1
  if [ ! -d "$PEERS_DIR/$name" ]; then
    echo "not found in $PEERS_DIR" > "$RES/$name.status"; return
  fi
  mkdir -p "$WORK/peers"
  # the shared folder is read-only: work on a copy (installs and data land in the copy)
  cp -a "$PEERS_DIR/." "$WORK/peers/" && chmod -R u+w "$WORK/peers"
  if [ "${SKIP_INSTALL:-0}" != 1 ]; then
    echo "== $name: install.sh (log: $WORK/$name-install.log) $(date +%T)"
    if ! (cd "$dir" && timeout "${INSTALL_TIMEOUT:-1800}" ./install.sh) > "$WORK/$name-install.log" 2>&1; then
      echo "could not be installed here (see $WORK/$name-install.log: $(tail -n 2 "$WORK/$name-install.log" | tr '\n' ' '))" > "$RES/$name.status"
      return
    fi
  fi
  echo "== $name: bench.sh (log: $WORK/$name-bench.log) $(date +%T); $(uptime)"
  # Temporal runs ~15 wf/s here: its N=5000 run alone takes ~6 min, so it is off unless asked
  local n5000=${N5000:-1}
  [ "$name" = temporal ] && n5000=${TEMPORAL_N5000:-0}
  if [ -n "${STATE_KIB:-}" ]; then
    # one run per size, its figures tagged with the size; no N=5000 run, no crash test
    rm -f "$RES/$name.jsonl"
    local kib status=ok
    for kib in ${STATE_KIB//,/ }; do
      echo "   BLOB_KB=$kib $(date +%T)"
      if ! (cd "$dir" && BLOB_KB=$kib N5000=0 CRASH_RUNS=0 timeout "${BENCH_TIMEOUT:-1800}" ./bench.sh) \
          > "$WORK/$name-bench-$kib.log" 2>&1; then
        status="bench.sh failed or timed out at BLOB_KB=$kib (see $WORK/$name-bench-$kib.log)"
      fi
      grep '^{' "$WORK/$name-bench-$kib.log" | sed "s/^{/{\"blob_kb\": $kib, /" >> "$RES/$name.jsonl" || true
    done
    echo "$status" > "$RES/$name.status"
    echo "   $status; $(uptime)"
    return
  fi
  if ! (cd "$dir" && N5000=$n5000 timeout "${BENCH_TIMEOUT:-1800}" ./bench.sh) > "$WORK/$name-bench.log" 2>&1; then
    echo "bench.sh failed or timed out (see $WORK/$name-bench.log: $(tail -n 2 "$WORK/$name-bench.log" | tr '\n' ' '))" > "$RES/$name.status"
  else
    echo "ok" > "$RES/$name.status"
  fi
  grep '^{' "$WORK/$name-bench.log" > "$RES/$name.jsonl" || true
  echo "   $(cat "$RES/$name.status"); $(uptime)"
}

IFS=, read -ra LIST <<< "$PEERS"
for p in "${LIST[@]}"; do run_peer "$p"; done

if [ -n "${STATE_KIB:-}" ]; then
python3 - "$RES" "${LIST[@]}" <<'EOF'
import json, os, sys
res, peers = sys.argv[1], sys.argv[2:]
ours = json.load(open(os.path.join(res, "durable.json")))
rows = {}
for r in ours.get("state", []):
    rows.setdefault(r["kib"], {})[r["blob"]] = r
print()
print("== state size side by side (same machine, one run; load average at start of ours %.2f)" % ours["machine"]["load_at_start"])
for p in peers:
    path = os.path.join(res, p + ".jsonl")
    peer = {}
    if os.path.exists(path):
        for l in open(path):
            try:
                v = json.loads(l)
            except ValueError:
                continue
            if v.get("measure") == "throughput" and v.get("wf_per_s"):
                peer[v["blob_kb"]] = max(peer.get(v["blob_kb"], 0), v["wf_per_s"])
    spath = os.path.join(res, p + ".status")
    status = open(spath).read().strip() if os.path.exists(spath) else "not run"
    print("%s (%s)" % (p, status))
    print("| KiB | durable, blob `x` wf/s | durable, random blob wf/s | %s wf/s (blob `x`) | ratio, `x` | ratio, random |" % p)
    print("|---:|---:|---:|---:|---:|---:|")
    for kib in sorted(rows):
        x, rnd, theirs = rows[kib].get("repeated"), rows[kib].get("random"), peer.get(kib)
        f = lambda r: "%.0f" % r["workflows_per_s"] if r else "-"
        q = lambda r: "%.1fx" % (r["workflows_per_s"] / theirs) if r and theirs else "-"
        print("| %d | %s | %s | %s | %s | %s |" % (kib, f(x), f(rnd), "%.0f" % theirs if theirs else "-", q(x), q(rnd)))
EOF
echo "== done $(date +%T); $(uptime)"
exit 0
fi

python3 - "$RES" "${LIST[@]}" <<'EOF'
import json, os, sys
res, peers = sys.argv[1], sys.argv[2:]
ours = json.load(open(os.path.join(res, "durable.json")))
best = max(ours["throughput"], key=lambda t: t["workflows_per_s"])
lat = ours["latency"][0]
print()
print("== side by side (same machine, one run; load average at start of ours %.2f)" % ours["machine"]["load_at_start"])
print("durable: best throughput %.0f wf/s (%d in flight, N=%d); latency p50 %.2f ms, p99 %.2f ms"
      % (best["workflows_per_s"], best["in_flight"], best["workflows"], lat["p50_ms"], lat["p99_ms"]))
targets = {"restate": (10, 1 / 3), "dbos": (50, None), "temporal": (None, None)}
print("%-9s %-10s %12s %12s %10s %12s %10s  %s" % ("peer", "status", "peer wf/s", "throughput x", "target", "peer p50 ms", "p50 ratio", "latency target"))
for p in peers:
    status = open(os.path.join(res, p + ".status")).read().strip() if os.path.exists(os.path.join(res, p + ".status")) else "not run"
    lines = []
    path = os.path.join(res, p + ".jsonl")
    if os.path.exists(path):
        for l in open(path):
            try:
                lines.append(json.loads(l))
            except ValueError:
                pass
    tps = [l for l in lines if l.get("measure") == "throughput" and l.get("wf_per_s")]
    lats = [l for l in lines if l.get("measure") == "latency" and l.get("p50_ms")]
    if not tps and not lats:
        print("%-9s %s" % (p, "NO FIGURES: " + status))
        continue
    tx, lx = targets.get(p, (None, None))
    ptp = max((t["wf_per_s"] for t in tps), default=None)
    pl = lats[0]["p50_ms"] if lats else None
    ratio = best["workflows_per_s"] / ptp if ptp else None
    lratio = lat["p50_ms"] / pl if pl else None
    def fmt(v, f):
        return f % v if v is not None else "-"
    tt = ("≥ %dx: %s" % (tx, "met" if ratio and ratio >= tx else "MISSED")) if tx else "-"
    lt = ("≤ 1/3: %s" % ("met" if lratio is not None and lratio <= lx else "MISSED")) if lx else "-"
    print("%-9s %-10s %12s %12s %10s %12s %10s  %s" % (p, "ok" if status == "ok" else "partial", fmt(ptp, "%.1f"),
          fmt(ratio, "%.1fx"), tt, fmt(pl, "%.2f"), fmt(lratio, "%.3f"), lt))
    if status != "ok":
        print("          (%s)" % status)
print()
print("durable vs its own limits:")
for l in ours.get("limit", []):
    same = l["runtime_pct_of_same_keys"]
    print("  %4d in flight: runtime %.0f transitions/s = %.1f%% of raw sled replaying the run's own commits (target ≥ 50%%: %s), %.1f%% of raw sled appending synthetic keys"
          % (l["in_flight"], l["runtime_transitions_per_s"], same, "met" if same >= 50 else "MISSED", l["runtime_pct_of_raw"]))
over = lat["per_step_overhead_ms"]
print("  per-step overhead alone: %.3f ms above the raw fsync of an append (%.3f ms) (target ≤ 0.2 ms: %s); %.3f ms above one inside the file (%.3f ms)"
      % (over, lat["raw_fsync_p50_ms"], "met" if over <= 0.2 else "MISSED",
         lat.get("per_step_overhead_over_overwrite_ms", float("nan")), lat.get("raw_overwrite_fsync_p50_ms", float("nan"))))
EOF
echo "== done $(date +%T); $(uptime)"
