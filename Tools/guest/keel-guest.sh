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
