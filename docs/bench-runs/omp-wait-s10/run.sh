#!/bin/bash
# policies × {idle, one `yes` contender}; each line: mode policy seconds rustc-before rustc-after
B=/work/main/target/release/vml-filter
T=$(pgrep -f "/tmp/vml-train train" | head -1)
[ -n "$T" ] && kill -STOP $T
for r in 1 2 3; do
 for mode in idle yes; do
  [ $mode = yes ] && { yes > /dev/null & Y=$!; }
  for pol in spin passive spin10k; do
    b=$(pgrep -c rustc)
    s=$(date +%s.%N)
    case $pol in
      spin) env VML_OMP_SPIN=1 $B --sr 2 --steps 8 --iters 1 --threads 2 -q -i /tmp/low128.png -o /tmp/o.png ;;
      passive) env OMP_WAIT_POLICY=PASSIVE $B --sr 2 --steps 8 --iters 1 --threads 2 -q -i /tmp/low128.png -o /tmp/o.png ;;
      spin10k) env VML_OMP_SPIN=1 GOMP_SPINCOUNT=10000 $B --sr 2 --steps 8 --iters 1 --threads 2 -q -i /tmp/low128.png -o /tmp/o.png ;;
    esac
    e=$(date +%s.%N)
    echo "$mode $pol $(echo "$e - $s" | bc | cut -c1-6) $b $(pgrep -c rustc)"
  done
  [ $mode = yes ] && kill $Y
 done
done
[ -n "$T" ] && kill -CONT $T
