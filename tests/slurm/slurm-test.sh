#!/usr/bin/env bash
# `vml-filter batch --shard auto` on a real Slurm: Debian's slurmctld and slurmd started here
# as a one-node cluster (root, no systemd, munge for authentication), a 4-task job array over
# 21 small pictures (20 with the classical method, one with the shipped default network), and
# the properties docs/batch.md promises of it:
#   - every output exists exactly once, each file is `done` in exactly one shard's journal,
#     and no temporary (`.part`) file is left;
#   - resubmitting the whole array does no work (every file skipped, no output rewritten);
#   - a task cancelled by `scancel` in the middle of its share leaves no partial output, and
#     resubmitting that one task (`sbatch --array=K`) completes the set.
# The daemons this script starts are stopped by the PIDs in their pid files, never by name.
#
#   tests/slurm/slurm-test.sh          (VML_FILTER=... to test another binary; VML_TEST_KEEP=1
#                                       keeps the work folder)
# Needs root and Debian's package archive (it installs slurmctld, slurmd, slurm-client and
# munge when they are missing); without root it says SKIPPED and exits 0, as the shim tests do.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../shims/lib.sh
source "$here/../shims/lib.sh"
repo=$(repo_root)
T0=$SECONDS

echo "# Slurm array tests"
if [[ $(id -u) != 0 ]]; then
    echo "SKIPPED (need root and Debian's package archive): tests/slurm/slurm-test.sh"
    exit 0
fi
bin=$(find_vml_filter) || { fail "vml-filter binary present"; finish; }
ensure_imagemagick || { fail "ImageMagick installed on the host"; finish; }

if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null ||
    ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
    echo "installing Slurm (apt-get install slurmctld slurmd slurm-client munge)" >&2
    { apt-get update -qq &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            slurmctld slurmd slurm-client munge; } >&2 ||
        { fail "Slurm packages installed"; finish; }
fi

work=$(mktemp -d /tmp/vml-slurm-test.XXXXXX)
chmod 755 "$work"
started_pids=()

# Stops what this script started, by the PIDs it recorded, and waits for each to go.
stop_daemons() {
    local pid pidfile
    for pidfile in "$work/slurmd.pid" "$work/slurmctld.pid" "$work/munged.pid"; do
        [[ -s $pidfile ]] || continue
        pid=$(cat "$pidfile")
        started_pids+=("$pid")
    done
    for pid in "${started_pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${started_pids[@]}"; do
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    done
}
cleanup() {
    stop_daemons
    if [[ -n ${VML_TEST_KEEP:-} ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# --- munge: the authentication Debian's Slurm is built for -------------------------------------
# Without systemd /run/munge does not exist; munged refuses to run as root.
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    install -d -o munge -g munge -m 755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        runuser -u munge -- mungekey --create >/dev/null 2>&1 ||
            { fail "munge key created"; finish; }
    fi
    # The pid file lives in the work folder, which munge's user must be able to write to.
    install -d -o munge -g munge -m 755 "$work/munge"
    runuser -u munge -- munged --pid-file="$work/munge/munged.pid" ||
        { fail "munged started"; finish; }
    for _ in $(seq 50); do
        [[ -s $work/munge/munged.pid ]] && break
        sleep 0.1
    done
    cp "$work/munge/munged.pid" "$work/munged.pid"
fi
check "munge authenticates" bash -c 'munge -n | unmunge'

# --- a one-node cluster -------------------------------------------------------------------------
host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(($(awk '/MemAvailable/ {print $2}' /proc/meminfo) / 1024 / 2))
mkdir -p "$work/state" "$work/spool" "$work/logs"
conf=$work/slurm.conf
cat >"$conf" <<EOF
ClusterName=vmltest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MailProg=/bin/true
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/logs/slurmctld.log
SlurmdLogFile=$work/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerParameters=batch_sched_delay=0,sched_interval=1,bf_interval=1
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf
/usr/sbin/slurmctld -f "$conf" || { fail "slurmctld started"; finish; }
/usr/sbin/slurmd -f "$conf" -N "$host" || { fail "slurmd started"; finish; }
# Saved node state can say idle before slurmd has registered: wait until a job really runs.
ready=
for _ in $(seq 60); do
    if timeout 10 srun -N1 -t 1 true 2>/dev/null; then ready=1; break; fi
    sleep 0.5
done
if [[ -z $ready ]]; then
    fail "the cluster runs a job" "$(tail -5 "$work"/logs/*.log)"
    finish
fi
pass "the cluster runs a job (slurmctld $(cat "$work/slurmctld.pid"), slurmd $(cat "$work/slurmd.pid"))"

# --- the pictures ---------------------------------------------------------------------------------
# 20 small plasma pictures in two folders for the classical method, and one for the network,
# named in a manifest line with its own method and preset.
in=$work/in
mkdir -p "$in/a" "$in/b" "$work/net"
for i in $(seq -w 1 20); do
    d=a
    ((10#$i > 10)) && d=b
    /usr/bin/convert -seed "$i" -size 24x20 plasma:tomato-steelblue "$in/$d/p$i.png"
done
/usr/bin/convert -seed 99 -size 32x24 plasma:green-purple -blur 0x1 "$work/net/street.png"
manifest=$work/net.jsonl
echo '{"input": "net/street.png", "options": {"method": "vml-map", "quality": "best"}}' >"$manifest"
# Every output relative path, as the batch will name them (the manifest's paths are relative
# to its folder: the network file is `net/street.png`).
expected=$( (cd "$in" && find a b -name '*.png'; echo net/street.png) | sort)
n_expected=$(wc -l <<<"$expected")

# The array job: each task takes its share of the same inputs into one shared OUTDIR. Task
# IDs are the shard indexes (--shard-count), so a task resubmitted alone keeps its share.
job=$work/restore.sbatch
cat >"$job" <<EOF
#!/bin/bash
#SBATCH --job-name=vml-test
#SBATCH --cpus-per-task=1
#SBATCH --output=$work/logs/task-%A_%a.log
exec "$bin" batch --sr 2 --method classical --model default --device cpu --threads 1 \\
    --progress json "$in" --manifest "$manifest" -o "\$1" \\
    --shard auto --shard-count 4
EOF
export VML_MODELS=$repo/models

# submit ARRAY OUTDIR: prints the job ID.
submit() { sbatch --parsable --array="$1" "$job" "$2" | cut -d';' -f1; }
# wait_job ID: until no task of the job is queued or running (at most 5 minutes).
wait_job() {
    local _
    for _ in $(seq 600); do
        [[ -z $(squeue -h -j "$1" 2>/dev/null) ]] && return 0
        sleep 0.5
    done
    return 1
}
# task_states ID: "index state exit" per task of a finished array (scontrol keeps them for
# MinJobAge, no accounting needed).
task_states() {
    scontrol -o show job "$1" | sed -n 's/.*ArrayTaskId=\([0-9]*\) .*JobState=\([A-Z_]*\) .*ExitCode=\([0-9:]*\) .*/\1 \2 \3/p' | sort -n
}
# outputs DIR: the image files under DIR, relative, sorted.
outputs() { (cd "$1" && find . -name '*.png' | sed 's|^\./||' | sort); }
# done_records DIR: the relative path of every `done` record in the journals of DIR, sorted,
# repeats kept (a file restored twice shows twice).
done_records() {
    cat "$1"/journal-*-of-4.jsonl 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        r = json.loads(line)
    except ValueError:
        continue
    if r.get("type") == "file" and r.get("status") == "done":
        print(r["rel"])' | sort
}
# last_ends DIR: the sums of `done` and `skipped` over each journal's last `end` record.
last_ends() {
    python3 -c '
import json, sys
done = skipped = 0
for path in sys.argv[1:]:
    ends = [r for r in map(json.loads, open(path)) if r.get("type") == "end"]
    done += ends[-1]["done"]
    skipped += ends[-1]["skipped"]
print(done, skipped)' "$1"/journal-*-of-4.jsonl
}

# --- 1. the whole array --------------------------------------------------------------------------
out=$work/out
id=$(submit 0-3 "$out") || { fail "sbatch accepts the array"; finish; }
if ! wait_job "$id"; then fail "the array finishes"; finish; fi
states=$(task_states "$id")
check "all 4 tasks completed with exit 0" \
    test "$(grep -c ' COMPLETED 0:0$' <<<"$states")" = 4
check "every output exactly once ($n_expected files)" \
    test "$(outputs "$out")" = "$expected"
check "each file done in exactly one shard's journal" \
    test "$(done_records "$out")" = "$expected"
check "no temporary file left" test -z "$(find "$out" -name '*.part')"
check "batch --status: all done" "$bin" batch --status "$out" -q
check "the network file was restored by the default model" \
    grep -q '"method":"vml-map"' "$out"/journal-*-of-4.jsonl

# --- 2. a rerun of the array does no work -------------------------------------------------------
stamp=$work/stamp
touch "$stamp"
sleep 1.1
id2=$(submit 0-3 "$out") && wait_job "$id2"
check "rerun: all 4 tasks completed" \
    test "$(task_states "$id2" | grep -c ' COMPLETED 0:0$')" = 4
check "rerun: no output rewritten" test -z "$(find "$out" -name '*.png' -newer "$stamp")"
check "rerun: no file restored again" test "$(done_records "$out")" = "$expected"
check "rerun: every file skipped as already done" test "$(last_ends "$out")" = "0 $n_expected"

# --- 3. scancel one task in the middle of its share, resubmit it alone -----------------------------
# The task that owns the network file (slow next to the classical ones) is cancelled while
# that file is in flight: its journal has begun and the output is not there yet.
owner=$(grep -l '"rel":"net/street.png"' "$out"/journal-*-of-4.jsonl | head -1)
k=$(basename "$owner" | sed 's/journal-\([0-9]*\)-of-4.jsonl/\1/')
out3=$work/out3
id3=$(submit 0-3 "$out3")
cancelled=
for _ in $(seq 600); do
    if [[ -f $out3/journal-$k-of-4.jsonl && ! -f $out3/net/street.png ]] &&
        squeue -h -j "${id3}_$k" -t R 2>/dev/null | grep -q .; then
        sleep 0.5
        [[ -f $out3/net/street.png ]] && break
        scancel "${id3}_$k" && cancelled=1
        break
    fi
    sleep 0.1
done
wait_job "$id3"
check "task $k cancelled while its network file was in flight" test -n "$cancelled"
check "after scancel: task $k is CANCELLED, the others COMPLETED" \
    test "$(task_states "$id3" | awk -v k="$k" '($1 == k && $2 == "CANCELLED") || ($1 != k && $2 == "COMPLETED")' | wc -l)" = 4
check "after scancel: the network file's output is not there" test ! -e "$out3/net/street.png"
check "after scancel: no partial output" test -z "$(find "$out3" -name '*.part')"
check "after scancel: task $k wrote its end record, marked interrupted" \
    bash -c 'tail -1 "$0" | grep -q "\"type\":\"end\".*\"interrupted\":true"' "$out3/journal-$k-of-4.jsonl"
check "after scancel: batch --status says the set is not done" \
    bash -c '! "$0" batch --status "$1" -q' "$bin" "$out3"
id4=$(sbatch --parsable --array="$k" "$job" "$out3" | cut -d';' -f1) && wait_job "$id4"
check "resubmitted task $k completed" test "$(task_states "$id4" | grep -c ' COMPLETED 0:0$')" = 1
check "after resubmitting: every output exactly once" test "$(outputs "$out3")" = "$expected"
check "after resubmitting: each file done in exactly one journal" \
    test "$(done_records "$out3")" = "$expected"
check "after resubmitting: batch --status: all done" "$bin" batch --status "$out3" -q
check "after resubmitting: no temporary file left" test -z "$(find "$out3" -name '*.part')"
check "the set is the same bytes as the uninterrupted run" diff -r -q \
    --exclude='journal-*' --exclude='.vml-*' "$out" "$out3"

finish
