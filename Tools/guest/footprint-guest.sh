# footprint-guest.sh: the inside of Tools/footprint (runs in the VM as root).
set -uo pipefail
source Tools/guest/keel-guest.sh
keel_prelude || exit 1
dir=/tmp/footprint; mkdir -p $dir
printf 'defaults {\n    find_multipaths greedy\n}\n' > $dir/empty.conf   # every disk a map, as before find_multipaths was applied
status_kb() { local key=$1 pid=$2 line; while read -r line; do [[ $line == $key:* ]] && { line=${line#*:}; echo ${line%kB}; return; }; done < /proc/$pid/status; }
sd_count() { local d n=0; for d in /sys/block/sd*; do [ -e "$d/dev" ] && n=$((n + 1)); done; echo $n; }
disks_at_least() { [ "$(sd_count)" -ge "$1" ]; }
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }
ctl() { "$KEEL_FOOTPRINT_BIN" --control-socket $dir/keeld.socket --command "$*"; }
start_keeld() {
  rm -f $dir/keeld.stderr $dir/keeld.log
  "$KEEL_FOOTPRINT_BIN" --config $dir/empty.conf --log-file $dir/keeld.log --control-socket $dir/keeld.socket \
    --pid-file $dir/keeld.pid 2> $dir/keeld.stderr &
  kp=$!
}
wait_ready() { keel_wait 300 grep -q "^ready:\|ready:" $dir/keeld.stderr 2>/dev/null; }
stop_keeld() {
  kill $kp; wait $kp 2>/dev/null
  dmsetup remove_all --force > /dev/null 2>&1
}
printf '%-8s %-7s %10s %10s %10s  %s\n' LUNs paths "VmLck kB" "VmRSS kB" "ready s" "keeld's tables"
for n in $KEEL_FOOTPRINT_LUNS; do
  modprobe scsi_debug add_host=4 num_tgts=1 max_luns=$n vpd_use_hostno=0 dev_size_mb=8 || exit 1
  keel_wait 300 disks_at_least $((4 * n)) || { echo "scsi_debug: $(sd_count) of $((4 * n)) disks" >&2; exit 1; }
  keel_sleep 3   # the last probes and ALUA states settle
  t0=$(now_ms); start_keeld
  until grep -q "ready:" $dir/keeld.stderr 2>/dev/null; do
    kill -0 $kp 2>/dev/null || { cat $dir/keeld.stderr; exit 1; }
    keel_sleep 0.05
  done
  t1=$(now_ms)
  keel_sleep 2
  tables=$(ctl show daemon | grep '^tables')
  printf '%-8s %-7s %10s %10s %10s  %s\n' $n $((4 * n)) $(status_kb VmLck $kp) $(status_kb VmRSS $kp) \
    $(awk "BEGIN{printf \"%.2f\", ($t1 - $t0) / 1000}") "$tables"
  grep -o 'memory locked:.*' $dir/keeld.stderr | sed 's/^/  keeld: /'
  grep -o 'start-up:.*' $dir/keeld.stderr | sed 's/^/  keeld: /'
  # The deepest the threads' stacks went: start-up, then a reconfigure and the largest views.
  ctl reconfigure >/dev/null; keel_sleep 2
  ctl show paths >/dev/null; ctl show maps topology >/dev/null; ctl show config >/dev/null
  ctl show daemon | grep '^thread stacks' | sed 's/^/  keeld: /'
  if [ -z "${shown_mappings:-}" ]; then
    shown_mappings=1
    echo "  where the locked memory goes at $n LUN(s) (kB by mapping, largest first):"
    awk '/^[0-9a-f]+-[0-9a-f]+ / { name = ($6 == "") ? "[anonymous: heap, stacks, tables]" : $6 }
         /^Locked:/ { sum[name] += $2 }
         END { for (k in sum) if (sum[k] > 0) printf "  %8d  %s\n", sum[k], k }' /proc/$kp/smaps | sort -rn | head -14
    echo "  the largest anonymous mappings (kB locked; each start-up buffer of 64 KiB or more has its own):"
    awk '/^[0-9a-f]+-[0-9a-f]+ / { anon = ($6 == ""); range = $1 }
         /^Locked:/ { if (anon && $2 > 0) printf "  %8d  %s\n", $2, range }' /proc/$kp/smaps | sort -rn | head -12
  fi
  stop_keeld
  keel_scsi_debug_unload || exit 1
done
echo
echo "hot-add burst: 4 hosts x $KEEL_FOOTPRINT_HOT LUNs added to a running keeld"
modprobe scsi_debug add_host=0 num_tgts=1 max_luns=$KEEL_FOOTPRINT_HOT vpd_use_hostno=0 dev_size_mb=8 || exit 1
start_keeld
until grep -q "ready:" $dir/keeld.stderr 2>/dev/null; do kill -0 $kp 2>/dev/null || { cat $dir/keeld.stderr; exit 1; }; keel_sleep 0.05; done
echo "before: VmLck $(status_kb VmLck $kp) kB VmRSS $(status_kb VmRSS $kp) kB; $(ctl show daemon | grep '^tables')"
want=$((4 * KEEL_FOOTPRINT_HOT))
t0=$(now_ms)
echo 4 > /sys/bus/pseudo/drivers/scsi_debug/add_host
last=""
t_disks=""
while :; do
  line=$(ctl show daemon | grep '^maps ')
  # The kernel's side: how many of the new disks it has made so far.
  disks=$(ls /sys/block | grep -c '^sd')
  [ -z "$t_disks" ] && [ "$disks" -ge $want ] && t_disks=$(now_ms)
  [ "$line $disks" != "$last" ] && { echo "  t=$(awk "BEGIN{printf \"%.1f\", ($(now_ms) - $t0) / 1000}")s $line; $disks sd disks made"; last="$line $disks"; }
  [ "${line##* }" -ge $want ] 2>/dev/null && break
  if (( $(now_ms) - t0 > 600000 )); then
    # Whose side: disks the kernel never made, or disks keeld has not taken?
    echo "  gave up after 600 s: $(ls /sys/block | grep -c '^sd') sd disks present"
    grep -E "overflowed|rediscovery finished|refused|skipped|cannot" $dir/keeld.log | tail -n 8 | sed 's/^/    /'
    gave_up=1
    break
  fi
  keel_sleep 0.5
done
t1=$(now_ms)
[ -n "${gave_up:-}" ] || echo "all $want paths in maps after $(awk "BEGIN{printf \"%.1f\", ($t1 - $t0) / 1000}") s (the kernel had made all $want disks after $(awk "BEGIN{printf \"%.1f\", (${t_disks:-$t1} - $t0) / 1000}") s)"
echo "after: VmLck $(status_kb VmLck $kp) kB VmRSS $(status_kb VmRSS $kp) kB; $(ctl show daemon | grep '^tables')"
ctl show daemon | grep '^thread stacks'
grep -c "tables grown" $dir/keeld.log | sed 's/^/growth steps logged: /'
grep -cE "not answered within|did not answer a topology request" $dir/keeld.log | sed 's/^/late answers logged (prioritizer or detection commands, topology requests): /'
grep "tables grown\|tables full" $dir/keeld.log | tail -3
stop_keeld
