#!/bin/bash
# one `yes` contender vs idle: passive 2 threads, passive 1 thread, spin 2 threads
B=/work/main/target/release/vml-filter
T=$(pgrep -f "/tmp/vml-train train" | head -1)
[ -n "$T" ] && kill -STOP $T
run() { local s e; s=$(date +%s.%N); "$@" --sr 2 --steps 8 --iters 1 -q -i /tmp/low128.png -o /tmp/o.png; e=$(date +%s.%N); echo "$e - $s" | bc | cut -c1-6; }
for r in 1 2; do
 for mode in idle yes; do
  [ $mode = yes ] && { yes > /dev/null & Y=$!; }
  b=$(pgrep -c rustc)
  p2=$(run env OMP_WAIT_POLICY=PASSIVE $B --threads 2)
  p1=$(run env OMP_WAIT_POLICY=PASSIVE $B --threads 1)
  s2=$(run env VML_OMP_SPIN=1 $B --threads 2)
  echo "$mode passive2=$p2 passive1=$p1 spin2=$s2 rustc=$b/$(pgrep -c rustc)"
  [ $mode = yes ] && kill $Y
 done
done
[ -n "$T" ] && kill -CONT $T
