# keel-guest.sh: bash functions for use INSIDE a Tools/vm-run guest (source it; needs root).
#
#   source Tools/guest/keel-guest.sh
#   keel_prelude                 # the dm and SCSI modules Keel's real-kernel tests rely on
#   keel_scsi_debug 4            # one 64 MiB LUN behind 4 SCSI hosts = 4 paths; waits for its 4 disks
#   keel_sd_disks                # the scsi_debug disks, by host number: "sda\nsdb\n..."
#   keel_scsi_host sdb           # its SCSI host number
#   keel_path_offline sdb        # TUR and I/O on that path fail at once
#   keel_path_online sdb
#   keel_scsi_debug_unload       # after every dm map on it is removed
#   keel_start_udevd             # only for what needs udev (multipathd does; Keel's tests do not)
#   keel_iscsi 2 2               # iSCSI over loopback: 2 LUNs behind 2 portals = 4 paths; prints
#                                # "sdX PORTAL" per disk (portal 1 or 2)
#   keel_iscsi_portal_hang 2     # portal 2's commands hang (its session in recovery); others answer
#   keel_iscsi_portal_answer 2   # portal 2 serves again (the initiator logs in again by itself)
#   keel_iscsi_down              # log out, unload the target: no iSCSI disk left
#
# The state Keel's real-kernel tests (Tests/KeelKernelTests) can assume, as set up by
# Tools/kernel-tests, which runs each suite in a fresh VM with `keel_prelude` done first:
#   - loaded: dm-mod, dm-multipath, dm-round-robin, dm-service-time, dm-queue-length,
#     scsi_dh_alua, sd_mod, sg (the TUR checker writes to /dev/sgN); /dev/mapper/control exists;
#   - NOT loaded: scsi_debug. No SCSI disk, no dm map, no udevd, no multipathd;
#   - KEEL_KERNEL_TESTS=1, KEEL_GUEST_LIB is the absolute path of this file, the working directory
#     is the package root; tests of the suite run one at a time (--no-parallel).
# A test that needs paths loads scsi_debug itself and unloads it before it ends, so tests stay
# independent of their order; it must remove its dm maps first: scsi_debug cannot be unloaded
# while a map holds its disks.
#
# Facts behind the helpers (measured; see the comments at the top of Tools/vm-run):
#   - `vpd_use_hostno=0` makes every scsi_debug host report the same logical unit, so N hosts are
#     N paths to one LUN: the same wwid (naa.33333330000007d0) and the same logical-unit designators
#     in vpd_pg83. The page is not byte-identical: its target port group designator differs per
#     host (h+1). It also turns on implicit ALUA: host h is in
#     port group state h%3 (0 active/optimized, 1 active/non-optimized, 2 standby, which rejects
#     I/O). Disk names follow the asynchronous scan order: pick paths by host, not by name.
#   - sd_mod is not loaded on demand without udev: keel_prelude loads it, or no sd disk appears.
#   - Starting a process in the VM costs ~60-180 ms (TCG): the waits below poll with bash builtins
#     only, in this one process.
#   - Only `running` and `offline` can be written to /sys/block/sdX/device/state.

KEEL_MODULES=(dm-mod dm-multipath dm-round-robin dm-service-time dm-queue-length scsi_dh_alua sd_mod sg)

# keel_prelude: load the modules every real-kernel test can rely on (one modprobe process).
keel_prelude() {
  modprobe -a "${KEEL_MODULES[@]}" || return 1
  [ -c /dev/mapper/control ] || { echo "keel_prelude: /dev/mapper/control missing" >&2; return 1; }
}

# keel_sleep SECONDS: sleep without starting a process (read times out on a pipe nobody writes).
keel_sleep() {
  [ -n "${KEEL_SLEEP_FD:-}" ] || exec {KEEL_SLEEP_FD}<> <(:)
  read -r -t "$1" -u "$KEEL_SLEEP_FD" || true
}

# keel_find_sd_disks: set the array KEEL_SD_DISKS to the sd disks of scsi_debug, ordered by
# SCSI host number (no process started).
keel_find_sd_disks() {
  local dev hctl
  KEEL_SD_DISKS=()
  for dev in /sys/bus/pseudo/drivers/scsi_debug/adapter*/host*/target*/*:*:*:*/block/sd*; do
    [ -e "$dev" ] || continue
    hctl=${dev%/block/*}; hctl=${hctl##*/}
    KEEL_SD_DISKS[${hctl%%:*}]=${dev##*/}
  done
  KEEL_SD_DISKS=(${KEEL_SD_DISKS[@]+"${KEEL_SD_DISKS[@]}"})
}

# keel_sd_disks: the sd disks of scsi_debug, one per line, ordered by SCSI host number.
keel_sd_disks() {
  keel_find_sd_disks
  [ ${#KEEL_SD_DISKS[@]} -eq 0 ] || printf '%s\n' "${KEEL_SD_DISKS[@]}"
}

# keel_scsi_debug HOSTS [PARAM=VALUE...]: load scsi_debug with one 64 MiB LUN behind HOSTS SCSI
# hosts, then wait (at most 60 s) until HOSTS sd disks of it exist and their probing is over.
keel_scsi_debug() {
  local hosts=$1
  shift
  modprobe scsi_debug add_host="$hosts" num_tgts=1 max_luns=1 vpd_use_hostno=0 dev_size_mb=64 "$@" \
    || return 1
  keel_wait 60 keel_scsi_debug_ready "$hosts" \
    || { echo "keel_scsi_debug: ${#KEEL_SD_DISKS[@]} of $hosts disks, or still busy, after 60 s" >&2; return 1; }
}

# keel_scsi_debug_ready HOSTS: true once HOSTS disks exist and nothing holds the module: the
# asynchronous disk probes hold it for a few seconds, and `modprobe -r` fails meanwhile.
keel_scsi_debug_ready() {
  local refs
  keel_find_sd_disks
  [ ${#KEEL_SD_DISKS[@]} -ge "$1" ] && read -r refs < /sys/module/scsi_debug/refcnt && [ "$refs" = 0 ]
}

# keel_scsi_debug_unload: unload scsi_debug (waiting, at most 30 s, until nothing holds it); its
# disks are gone when it returns. Remove the dm maps on its disks first.
keel_scsi_debug_unload() {
  [ -d /sys/module/scsi_debug ] || return 0
  keel_wait 30 keel_scsi_debug_idle || { echo "keel_scsi_debug_unload: scsi_debug still in use" >&2; return 1; }
  modprobe -r scsi_debug
}

keel_scsi_debug_idle() {
  local refs
  read -r refs < /sys/module/scsi_debug/refcnt && [ "$refs" = 0 ]
}

# keel_wait SECONDS COMMAND [ARGS...]: run COMMAND (a shell function, to start no process) every
# 50 ms until it succeeds; false when SECONDS passed first.
keel_wait() {
  local limit=$1 start=${EPOCHREALTIME/./}
  shift
  until "$@"; do
    (( ${EPOCHREALTIME/./} - start < limit * 1000000 )) || return 1
    keel_sleep 0.05
  done
}

# keel_scsi_host sdX: the SCSI host number of a disk.
keel_scsi_host() {
  local dev
  for dev in /sys/block/"$1"/device/scsi_device/*; do
    [ -e "$dev" ] || return 1
    dev=${dev##*/}
    echo "${dev%%:*}"
    return 0
  done
}

# keel_devno sdX: the disk's major:minor, as dm tables name it.
keel_devno() {
  local devno
  read -r devno < "/sys/block/$1/dev" && echo "$devno"
}

# keel_path_offline sdX / keel_path_online sdX: fail or restore one path at the SCSI layer.
keel_path_offline() { echo offline > "/sys/block/$1/device/state"; }
keel_path_online() { echo running > "/sys/block/$1/device/state"; }

# keel_start_udevd: start systemd-udevd unless it runs. Start it BEFORE loading scsi_debug, or the
# disks it adds are never initialized in the udev database.
keel_start_udevd() {
  udevadm control --ping > /dev/null 2>&1 && return 0
  /lib/systemd/systemd-udevd --daemon || return 1
  udevadm control --ping -t 10 > /dev/null
}

# ------------------------------------------------------------------------------- iSCSI over loopback
# A hung *subset* of paths, which scsi_debug cannot give (its error options apply to every device at
# once). The kernel's own iSCSI target (LIO, configured through configfs: no targetcli) exports
# RAM-disk LUNs through several portals on 127.0.0.1 ports 3260.. (one target portal group each);
# open-iscsi's initiator logs in to every portal, so each LUN has one path per portal, all with
# the same WWID (naa.6001405..., from the LUN's unit serial).
# Facts (measured in this VM, Debian 6.1 kernel, open-iscsi 2.1.8):
#   - configfs is a module here: mount it after target_core_mod is loaded; lo must be up.
#   - Disabling a portal's target portal group (tpgt_N/enable = 0) drops its session. The initiator
#     puts the session in recovery and blocks its SCSI devices (state `blocked`): every command,
#     SG_IO included, waits, neither completing nor failing, until the session comes back or the
#     session's recovery_tmo (replacement_timeout) expires (then `transport-offline`, fast failure).
#     The other portal's session is untouched.
#   - Enabling it again: iscsid logs back in within a few seconds and the devices run again.
#   - Without a unit serial, LIO's VPD page 0x83 has no NAA designator and the disk has no WWID.
#   - LIO carries out every PERSISTENT RESERVE OUT that changes registrations, then writes its
#     APTPL state file under <dbroot>/pr (/var/target/pr here); without that directory the
#     command is done but answered NOT READY, LOGICAL UNIT COMMUNICATION FAILURE (02/08/00).
#   - iscsiadm's node database goes to /etc/iscsi, under the VM's throw-away overlay.
#   - A daemon started from a test must not inherit the test's descriptors: Foundation's Process
#     in the test process waits for the shell until every copy of them is closed (keel_daemon).
KEEL_ISCSI_TARGET=iqn.2026-12.org.keel:paths

# keel_daemon COMMAND [ARGS...]: run a daemon that forks into the background with only
# stdin/stdout/stderr of this shell: every other inherited descriptor is closed first.
keel_daemon() {
  (
    local fd
    for fd in /proc/self/fd/*; do
      fd=${fd##*/}
      (( fd > 2 )) && eval "exec $fd>&-" 2> /dev/null
    done
    exec "$@" < /dev/null > /dev/null 2>&1
  )
}

# keel_iscsi LUNS PORTALS: export LUNS 16 MiB RAM-disk LUNs through PORTALS portals, log in to
# every portal, wait (at most 60 s) for LUNS x PORTALS disks; prints "sdX PORTAL" for each disk.
keel_iscsi() {
  local luns=$1 portals=$2 core=/sys/kernel/config/target/core l g
  local t=/sys/kernel/config/target/iscsi/$KEEL_ISCSI_TARGET
  modprobe -a target_core_mod iscsi_target_mod iscsi_tcp || return 1
  mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config || return 1
  ip link set lo up || return 1
  mkdir -p "$(cat /sys/kernel/config/target/dbroot 2> /dev/null || echo /var/target)/pr" || return 1
  for ((l = 0; l < luns; l++)); do
    mkdir -p "$core/rd_mcp_$l/lun$l" || return 1
    echo rd_pages=4096 > "$core/rd_mcp_$l/lun$l/control"
    echo "keel-iscsi-lun-$l" > "$core/rd_mcp_$l/lun$l/wwn/vpd_unit_serial"
    echo 1 > "$core/rd_mcp_$l/lun$l/enable" || return 1
  done
  mkdir -p "$t" || return 1
  for ((g = 1; g <= portals; g++)); do
    mkdir -p "$t/tpgt_$g" || return 1
    for ((l = 0; l < luns; l++)); do
      mkdir -p "$t/tpgt_$g/lun/lun_$l" && ln -s "$core/rd_mcp_$l/lun$l" "$t/tpgt_$g/lun/lun_$l/disk" || return 1
    done
    mkdir "$t/tpgt_$g/np/127.0.0.1:$((3259 + g))" || return 1
    echo 1 > "$t/tpgt_$g/attrib/generate_node_acls"
    echo 0 > "$t/tpgt_$g/attrib/demo_mode_write_protect"
    echo 0 > "$t/tpgt_$g/attrib/authentication"
    echo 1 > "$t/tpgt_$g/attrib/cache_dynamic_acls"
    echo 1 > "$t/tpgt_$g/enable" || return 1
  done
  mkdir -p /run/lock/iscsi /var/lib/iscsi
  pidof iscsid > /dev/null || keel_daemon iscsid || return 1
  iscsiadm -m discovery -t sendtargets -p 127.0.0.1:3260 > /dev/null || return 1
  iscsiadm -m node -T "$KEEL_ISCSI_TARGET" --login > /dev/null || return 1
  keel_wait 60 keel_iscsi_ready $((luns * portals)) \
    || { echo "keel_iscsi: ${#KEEL_ISCSI_DISKS[@]} of $((luns * portals)) disks after 60 s" >&2; return 1; }
  printf '%s\n' "${KEEL_ISCSI_DISKS[@]}"
}

# keel_find_iscsi_disks: set KEEL_ISCSI_DISKS to "sdX PORTAL" for every iSCSI disk with its device
# node (the portal from its session's connection: port 3259 + PORTAL).
keel_find_iscsi_disks() {
  local dev session port disk
  KEEL_ISCSI_DISKS=()
  for dev in /sys/class/iscsi_session/session*/device/target*/*:*:*:*/block/sd*; do
    [ -e "$dev" ] || continue
    disk=${dev##*/}
    [ -b "/dev/$disk" ] || continue
    session=${dev#/sys/class/iscsi_session/}; session=${session%%/*}
    read -r port < /sys/class/iscsi_connection/connection${session#session}:0/persistent_port || continue
    KEEL_ISCSI_DISKS+=("$disk $((port - 3259))")
  done
}

keel_iscsi_ready() {
  keel_find_iscsi_disks
  [ ${#KEEL_ISCSI_DISKS[@]} -ge "$1" ]
}

# keel_iscsi_portal_hang N / keel_iscsi_portal_answer N: disable or enable portal N's target portal
# group (see the facts above).
keel_iscsi_portal_hang() { echo 0 > "/sys/kernel/config/target/iscsi/$KEEL_ISCSI_TARGET/tpgt_$1/enable"; }
keel_iscsi_portal_answer() { echo 1 > "/sys/kernel/config/target/iscsi/$KEEL_ISCSI_TARGET/tpgt_$1/enable"; }

# keel_iscsi_down: log out of every session and take the target apart (remove the dm maps on its
# disks first). Errors are ignored: used on the way out.
keel_iscsi_down() {
  local t=/sys/kernel/config/target/iscsi/$KEEL_ISCSI_TARGET core=/sys/kernel/config/target/core g l
  [ -d "$t" ] || return 0
  for g in "$t"/tpgt_*; do echo 1 > "$g/enable" 2> /dev/null; done
  iscsiadm -m node -T "$KEEL_ISCSI_TARGET" --logout > /dev/null 2>&1
  for g in "$t"/tpgt_*; do
    echo 0 > "$g/enable" 2> /dev/null
    rmdir "$g"/np/* 2> /dev/null
    for l in "$g"/lun/lun_*; do rm -f "$l"/disk; rmdir "$l"; done 2> /dev/null
    rmdir "$g" 2> /dev/null
  done
  rmdir "$t" 2> /dev/null
  for l in "$core"/rd_mcp_*/lun*; do rmdir "$l"; done 2> /dev/null
  rmdir "$core"/rd_mcp_* 2> /dev/null
  return 0
}
