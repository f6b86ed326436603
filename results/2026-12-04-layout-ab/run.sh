#!/usr/bin/env bash
# A/B of issue 11's layout refactor: old = 2e85a3a, new = main HEAD.
set -euo pipefail
out=OUT
mkdir -p $out
export SPINDLE_BENCH_DIR=NEW/target/bench-data
mkdir -p $SPINDLE_BENCH_DIR
declare -A dir=([old]=OLD [new]=NEW)
declare -A eng=([old]=OLD/target/release/deps/engine-16006b49dd744960 [new]=NEW/target/release/deps/engine-ec4b4e757b7f689e)
for r in 1 2 3; do
  for v in old new; do
    echo "== produce-100b-max $v round $r"
    ${dir[$v]}/target/release/loadgen produce --topic t100 --duration 20s --warmup 5s --record-size 100 \
      --throughput -1 --producers 2 --max-in-flight 32 --batch-size 262144 --partitions 16 \
      --report-interval 0 --results-dir $out/produce-$v-r$r > $out/produce-$v-r$r.txt 2>&1
    head -3 $out/produce-$v-r$r.txt
  done
done
for r in 1 2; do
  for v in old new; do
    echo "== engine append $v round $r"
    (cd ${dir[$v]} && ${eng[$v]} --bench append --measurement-time 4 --warm-up-time 2 > $out/engine-$v-r$r.txt 2>&1)
    grep -E "^append|time:|thrpt:" $out/engine-$v-r$r.txt | head -40
  done
done
