# compare-guest.sh: the inside of Tools/compare (runs in the VM as root).
#
# For each case: scsi_debug gives a device layout, /etc/multipath.conf (and conf.d, bindings,
# wwids) are written, Debian's multipathd builds its maps and is stopped, the maps are flushed and
# the state files put back, then keeld builds its maps from the same files. The two map sets are
# compared: dm name, uuid and the kernel's table (features, hardware handler, path groups with
# their selector and devices in order). Also compared: the lines each daemon added to the
# bindings and wwids files.
set -uo pipefail
source Tools/guest/keel-guest.sh
keel_prelude || exit 1
keel_start_udevd || { echo "compare: udevd does not start" >&2; exit 1; }
out=${KEEL_COMPARE_OUT:-/tmp/compare}; mkdir -p "$out"
work=/tmp/compare-work; mkdir -p $work
only=${KEEL_COMPARE_CASES:-}
now_ms() { echo $(( ${EPOCHREALTIME/./} / 1000 )); }

# The multipath maps the kernel has, one line each: name, uuid, table (device numbers as the
# kernel prints them), sorted by uuid.
maps_now() {
  local name uuid
  dmsetup info -c --noheadings -o name,uuid --separator ' ' 2>/dev/null | while read -r name uuid; do
    [[ $uuid == mpath-* ]] || continue
    echo "$name $uuid $(dmsetup table "$name" | tr -s ' ')"
  done | sort -k2
}

# Waits until the map set has not changed for 3 s (at least $1 s after the start, at most 90 s).
settle() {
  local min=$1 last="" same=0 t0 now cur
  t0=$(now_ms)
  while :; do
    keel_sleep 1
    cur=$(maps_now)
    if [ "$cur" = "$last" ]; then same=$((same + 1)); else same=0; last=$cur; fi
    now=$(( $(now_ms) - t0 ))
    [ $now -ge $((min * 1000)) ] && [ $same -ge 3 ] && break
    [ $now -ge 90000 ] && break
  done
}

flush() {
  dmsetup remove_all --force > /dev/null 2>&1
  keel_sleep 1
  dmsetup remove_all --force > /dev/null 2>&1
}

# put_state CASE_DIR: /etc/multipath.conf, conf.d, bindings and wwids as the case gives them.
put_state() {
  rm -rf /etc/multipath /etc/multipath.conf
  mkdir -p /etc/multipath/conf.d
  [ -f "$1/multipath.conf" ] && cp "$1/multipath.conf" /etc/multipath.conf
  [ -f "$1/conf.d.conf" ] && cp "$1/conf.d.conf" /etc/multipath/conf.d/10-case.conf
  [ -f "$1/bindings" ] && cp "$1/bindings" /etc/multipath/bindings
  [ -f "$1/wwids" ] && cp "$1/wwids" /etc/multipath/wwids
  return 0
}

# The non-comment lines of a state file, sorted (what a daemon added is compared, not headers).
state_lines() { [ -f "$1" ] && grep -v '^#' "$1" | grep -v '^[[:space:]]*$' | sort; return 0; }

# capture PREFIX: the maps and the state files' lines, into $out/PREFIX.{maps,bindings,wwids}.
capture() {
  maps_now > "$out/$1.maps"
  state_lines /etc/multipath/bindings > "$out/$1.bindings"
  state_lines /etc/multipath/wwids > "$out/$1.wwids"
}


# udev's question: is each disk a path of a multipath map? multipath -u and keel-path-claim answer
# from the same files; only DM_MULTIPATH_DEVICE_PATH is compared. Sets claim_differs.
compare_claims() {
  local claims="" d m k
  for d in $(ls /sys/block | grep -E '^(sd|nvme[0-9]+n[0-9]+$)'); do
    m=$(multipath -u "$d" 2>/dev/null | sed -n 's/^DM_MULTIPATH_DEVICE_PATH=//p' | tr -d '"')
    k=$("$KEEL_COMPARE_CLAIM_BIN" --quiet "$d" 2>/dev/null | sed -n 's/^DM_MULTIPATH_DEVICE_PATH=//p')
    claims+="$d:${m:-?}/${k:-?} "
    [ "$m" = "$k" ] || claim_differs=1
  done
  echo "--- udev claims $1 (disk:multipath -u/keel-path-claim): $claims"
}

# case NAME "scsi_debug args" : the case's files are already in $work/NAME.
run_case() {
  local name=$1 sdargs=$2 dir=$work/$1 mp kp t0
  if [ -n "$only" ] && [[ " $only " != *" $name "* ]]; then return 0; fi
  if [ "$sdargs" = nvme-ana ]; then
    # Two NVMe/TCP paths to one namespace, port 1 ANA optimized, port 2 non-optimized.
    echo "=== $name: NVMe over TCP, 2 paths (Tools/guest/nvme-ana-setup.sh)"
    bash Tools/guest/nvme-ana-setup.sh up > "$out/$name.nvme-setup" 2>&1 || { echo "$name: NVMe set-up failed" >&2; return 1; }
  else
    echo "=== $name: scsi_debug $sdargs"
    # shellcheck disable=SC2086
    modprobe scsi_debug $sdargs dev_size_mb=8 || { echo "$name: scsi_debug refused $sdargs" >&2; return 1; }
  fi
  udevadm settle -t 60
  keel_sleep 2
  [ -x "$dir/prepare" ] && "$dir/prepare" "$dir"

  put_state "$dir"
  compare_claims "before the daemons"
  t0=$(now_ms)
  multipathd -d -s -v2 > "$out/$name.multipathd.log" 2>&1 &
  mp=$!
  settle 8
  local mpd_ms=$(( $(now_ms) - t0 ))
  capture "$name.multipathd"
  compare_claims "with multipathd running"
  kill -TERM $mp; wait $mp 2>/dev/null
  flush

  put_state "$dir"
  rm -f $work/keeld.stderr
  t0=$(now_ms)
  "$KEEL_COMPARE_BIN" --log-file "$out/$name.keeld.log" --control-socket $work/keeld.socket --pid-file $work/keeld.pid \
    2> "$out/$name.keeld.stderr" &
  kp=$!
  keel_wait 120 grep -q "ready:" "$out/$name.keeld.stderr" || echo "$name: keeld not ready" >&2
  settle 3
  local keeld_ms=$(( $(now_ms) - t0 ))
  capture "$name.keeld"
  kill -TERM $kp; wait $kp 2>/dev/null
  flush
  if [ "$sdargs" = nvme-ana ]; then
    bash Tools/guest/nvme-ana-setup.sh down > /dev/null 2>&1
  else
    keel_scsi_debug_unload > /dev/null 2>&1 || { udevadm settle -t 30; modprobe -r scsi_debug; }
  fi
  udevadm settle -t 30

  local verdict=same what=""
  [ -n "${claim_differs:-}" ] && { verdict=DIFFERENT; what+=" claims"; claim_differs=""; }
  cmp -s "$out/$name.multipathd.maps" "$out/$name.keeld.maps" || { verdict=DIFFERENT; what+=" maps"; }
  cmp -s "$out/$name.multipathd.bindings" "$out/$name.keeld.bindings" || { verdict=DIFFERENT; what+=" bindings"; }
  cmp -s "$out/$name.multipathd.wwids" "$out/$name.keeld.wwids" || { verdict=DIFFERENT; what+=" wwids"; }
  local mnames knames
  mnames=$(awk '{print $1}' "$out/$name.multipathd.maps" | tr '\n' ' ')
  knames=$(awk '{print $1}' "$out/$name.keeld.maps" | tr '\n' ' ')
  printf '%s\n' "--- multipathd (${mpd_ms} ms to settle):" ; sed 's/^/    /' "$out/$name.multipathd.maps"
  printf '%s\n' "--- keeld (${keeld_ms} ms to settle):" ; sed 's/^/    /' "$out/$name.keeld.maps"
  if [ $verdict != same ]; then
    diff "$out/$name.multipathd.maps" "$out/$name.keeld.maps" | sed 's/^/    maps: /'
    diff "$out/$name.multipathd.bindings" "$out/$name.keeld.bindings" | sed 's/^/    bindings: /'
    diff "$out/$name.multipathd.wwids" "$out/$name.keeld.wwids" | sed 's/^/    wwids: /'
  fi
  printf '| %s | %s | %s | %s |%s\n' "$name" "${mnames:-none}" "${knames:-none}" "$verdict" "${what:+ ($what )}" >> "$out/table.md"
}

: > "$out/table.md"
mkcase() { mkdir -p "$work/$1"; }

# The WWID of LUN 0 of scsi_debug with vpd_use_hostno=0 (its T10 vendor designator, as udev and keeld read it).
W=1Linux_scsi_debug_2000

mkcase empty-config
mkcase strict-known;        printf '/%s/\n' $W > $work/strict-known/wwids
mkcase on-friendly;         printf 'defaults {\n    find_multipaths on\n    user_friendly_names yes\n}\n' > $work/on-friendly/multipath.conf
mkcase bindings-kept;       printf 'defaults {\n    user_friendly_names yes\n}\n' > $work/bindings-kept/multipath.conf
                            printf 'mpatha 3600a0980383030523424457a4a695266\nmpathq %s\n' $W > $work/bindings-kept/bindings
                            printf '/%s/\n' $W > $work/bindings-kept/wwids
mkcase friendly-gap;        printf 'defaults {\n    user_friendly_names yes\n    find_multipaths yes\n}\n' > $work/friendly-gap/multipath.conf
                            printf 'mpatha 3600a0980383030523424457a4a695266\nmpathc 3600a0980383030523424457a4a695267\n' > $work/friendly-gap/bindings
mkcase alias;               printf 'defaults {\n    find_multipaths on\n    user_friendly_names yes\n}\nmultipaths {\n    multipath {\n        wwid %s\n        alias data1\n    }\n}\n' $W > $work/alias/multipath.conf
mkcase single-on;           printf 'defaults {\n    find_multipaths on\n}\n' > $work/single-on/multipath.conf
mkcase single-greedy;       printf 'defaults {\n    find_multipaths greedy\n}\n' > $work/single-greedy/multipath.conf
mkcase single-off;          printf 'defaults {\n    find_multipaths no\n}\n' > $work/single-off/multipath.conf
mkcase luns-confd;          printf 'defaults {\n    polling_interval 5\n}\n' > $work/luns-confd/multipath.conf
                            printf 'defaults {\n    find_multipaths yes\n    user_friendly_names yes\n}\n' > $work/luns-confd/conf.d.conf
mkcase blacklist-exception; printf 'defaults {\n    find_multipaths greedy\n}\nblacklist {\n    wwid ".*"\n}\nblacklist_exceptions {\n    wwid "%s"\n}\n' $W > $work/blacklist-exception/multipath.conf
mkcase smart;               printf 'defaults {\n    find_multipaths smart\n}\n' > $work/smart/multipath.conf
mkcase vendor-table;        printf 'defaults {\n    find_multipaths on\n}\n' > $work/vendor-table/multipath.conf
mkcase nvme-ana;            printf 'defaults {\n    user_friendly_names yes\n}\n' > $work/nvme-ana/multipath.conf
                            printf '/uuid.4b45454c-414e-4154-8573-000000000001/\n' > $work/nvme-ana/wwids

run_case empty-config        "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0"
run_case strict-known        "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0"
run_case on-friendly         "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0"
run_case bindings-kept       "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0"
run_case friendly-gap        "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0"
run_case alias               "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0"
run_case single-on           "add_host=2 num_tgts=1 max_luns=1 vpd_use_hostno=1"
run_case single-greedy       "add_host=2 num_tgts=1 max_luns=1 vpd_use_hostno=1"
run_case single-off          "add_host=2 num_tgts=1 max_luns=1 vpd_use_hostno=1"
run_case luns-confd          "add_host=2 num_tgts=1 max_luns=3 vpd_use_hostno=0"
run_case blacklist-exception "add_host=2 num_tgts=1 max_luns=3 vpd_use_hostno=0"
run_case smart               "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0"
run_case vendor-table        "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0 inq_vendor=NETAPP inq_product=LUN"
run_case nvme-ana            nvme-ana

# Keel's udev rules under the VM's udevd (installed in /run/udev/rules.d, which the VM's udevd
# reads; multipath-tools' 60-multipath.rules masked there, as an installation replaces it), for
# three layouts: what udev's database then says about each disk.
rules_check() {
  local name=$1 sdargs=$2 conf=$3 wwids=$4 expect=$5 d props got
  rm -rf /etc/multipath /etc/multipath.conf; mkdir -p /etc/multipath
  printf '%b' "$conf" > /etc/multipath.conf
  [ -n "$wwids" ] && printf '/%s/\n' "$wwids" > /etc/multipath/wwids
  # shellcheck disable=SC2086
  modprobe scsi_debug $sdargs dev_size_mb=8 || return 1
  udevadm settle -t 60
  for d in $(ls /sys/block | grep '^sd'); do
    udevadm trigger --action=add --settle "/sys/block/$d" 2>/dev/null || { udevadm trigger --action=add "/sys/block/$d"; udevadm settle -t 30; }
    props=$(udevadm info --query=property "/sys/block/$d")
    got="$(grep -E '^DM_MULTIPATH_DEVICE_PATH=' <<<"$props")"
    got+=" $(grep -E '^SYSTEMD_READY=' <<<"$props")"
    got+=" $(grep -E '^ID_FS_TYPE=' <<<"$props")"
    got+=" $(grep -E '^FIND_MULTIPATHS_WAIT_UNTIL=' <<<"$props" | sed 's/=.*/=<deadline>/')"
    got=$(echo $got)
    if [ "$got" = "$expect" ]; then echo "    $name $d: $got"; else echo "    $name $d: $got (expected $expect) DIFFERENT"; rules_differ=1; fi
  done
  keel_scsi_debug_unload > /dev/null 2>&1 || { udevadm settle -t 30; modprobe -r scsi_debug; }
  udevadm settle -t 30
}
if [ -z "$only" ] || [[ " $only " == *" udev-rules "* ]]; then
  echo "=== udev-rules: Tools/udev/60-keel-multipath.rules with keel-path-claim"
  mkdir -p /run/udev/rules.d
  sed "s|/usr/sbin/keel-path-claim|$KEEL_COMPARE_CLAIM_BIN|" Tools/udev/60-keel-multipath.rules > /run/udev/rules.d/60-keel-multipath.rules
  : > /run/udev/rules.d/60-multipath.rules
  udevadm control --reload
  rules_differ=""
  rules_check known "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0" "" "$W" \
    "DM_MULTIPATH_DEVICE_PATH=1 SYSTEMD_READY=0 ID_FS_TYPE=mpath_member"
  rules_check unknown "add_host=4 num_tgts=1 max_luns=1 vpd_use_hostno=0" "" "" "DM_MULTIPATH_DEVICE_PATH=0"
  # smart holds a single path back only while a daemon answers on multipathd's socket: a stand-in
  # listens there for this layout.
  python3 -c 'import socket, time; s = socket.socket(socket.AF_UNIX); s.bind("\0/org/kernel/linux/storage/multipathd"); s.listen(8); time.sleep(300)' &
  local_listener=$!
  keel_sleep 1
  rules_check smart-single "add_host=1 num_tgts=1 max_luns=1 vpd_use_hostno=0" \
    "defaults {\n    find_multipaths smart\n    find_multipaths_timeout 600\n}\n" "" \
    "DM_MULTIPATH_DEVICE_PATH=1 SYSTEMD_READY=0 FIND_MULTIPATHS_WAIT_UNTIL=<deadline>"
  kill $local_listener 2>/dev/null; wait $local_listener 2>/dev/null
  rm -f /run/udev/rules.d/60-keel-multipath.rules /run/udev/rules.d/60-multipath.rules
  udevadm control --reload
  printf '| udev-rules | - | - | %s |\n' "$([ -n "$rules_differ" ] && echo DIFFERENT || echo same)" >> "$out/table.md"
fi

echo
echo "| case | multipathd's maps | keeld's maps | verdict |"
echo "|---|---|---|---|"
cat "$out/table.md"
