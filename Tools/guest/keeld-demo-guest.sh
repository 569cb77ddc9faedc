# keeld-demo-guest.sh: the inside of Tools/keeld-demo (runs in the VM as root).
set -uo pipefail
source Tools/guest/keel-guest.sh
keel_prelude
step() { printf '\n=== %s (t=%ss)\n' "$*" "$SECONDS"; }
dir=/tmp/keeld-demo; mkdir -p $dir
cat > $dir/multipath.conf <<'C'
defaults {
    polling_interval 1
    max_polling_interval 4
    fast_probe_interval_ms 100
    path_grouping_policy group_by_prio
    prio alua
    failback immediate
    no_path_retry queue
    path_checker tur
    user_friendly_names yes
    find_multipaths greedy
    max_paths 64
    max_maps 16
    max_paths_per_map 16
}
C
step "4 SCSI paths to one LUN (scsi_debug, ALUA: host 0 optimized, 1 non-optimized, 2 standby, 3 optimized)"
keel_scsi_debug 4
disks=$(keel_sd_disks); echo $disks
sleep 3   # ALUA states settle after the scan
step "keeld starts"
"$KEELD_DEMO_BIN" --config $dir/multipath.conf --log-file $dir/keeld.log --control-socket $dir/keeld.socket 2> $dir/keeld.stderr &
kp=$!
for _ in $(seq 100); do grep -q "ready:" $dir/keeld.stderr 2>/dev/null && break; sleep 0.2; done
cat $dir/keeld.stderr
ctl() { "$KEELD_DEMO_BIN" --control-socket $dir/keeld.socket --command "$*"; }
echo "--- dmsetup table"; dmsetup table mpatha
echo "--- keeld show paths"; ctl show paths
echo "--- keeld show daemon"; ctl show daemon
step "write+verify workload on /dev/mapper/mpatha ($((KEELD_DEMO_OUTAGE + 25)) s)"
python3 Tools/guest/write-verify.py /dev/mapper/mpatha $((KEELD_DEMO_OUTAGE + 25)) > $dir/workload.log 2>&1 &
wp=$!
sleep 5
step "every path offline for ${KEELD_DEMO_OUTAGE} s (I/O queues in the kernel)"
for d in $disks; do keel_path_offline $d; done
sleep 6
echo "--- dmsetup status"; dmsetup status mpatha
echo "--- keeld show maps"; ctl show maps
sleep $((KEELD_DEMO_OUTAGE - 6))
step "paths come back one by one"
for d in $disks; do
  keel_path_online $d; back=$SECONDS
  sleep 2
  echo "--- $d back: dmsetup status"; dmsetup status mpatha
done
wait $wp; wstatus=$?
step "workload"
tail -n 8 $dir/workload.log
step "keeld's log (the outage and the return)"
grep -E "failed|reinstated|queue|ready|locked|SCHED|seccomp|group" $dir/keeld.log | tr -s ' ' | tail -n 40
kill -TERM $kp; wait $kp
echo
if [ $wstatus = 0 ]; then echo "keeld-demo: the workload saw no I/O error and no corrupted block"; else echo "keeld-demo: the workload FAILED (see above)"; fi
dmsetup remove mpatha; keel_scsi_debug_unload
exit $wstatus
