# nvme-ana-setup.sh: two NVMe-over-TCP paths to one namespace, for dm-multipath (runs in a
# Tools/vm-run guest as root).
#
#   bash Tools/guest/nvme-ana-setup.sh up              # target + 2 host controllers; prints the disks
#   bash Tools/guest/nvme-ana-setup.sh show            # prints the disks again
#   bash Tools/guest/nvme-ana-setup.sh set-ana 2 inaccessible
#                                                      # port 1|2's ANA group 1 state: optimized,
#                                                      # non-optimized, inaccessible, persistent-loss,
#                                                      # change
#   bash Tools/guest/nvme-ana-setup.sh probe /dev/nvme1n1
#                                                      # the ANA fields of Identify and the ANA log,
#                                                      # as the ana prioritizer reads them
#   bash Tools/guest/nvme-ana-setup.sh down            # disconnect, take the target apart
#
# The kernel's own NVMe target (nvmet, configured through configfs: no nvmetcli) exports one
# 128 MiB namespace (a loop device over a file in /tmp) through two TCP ports on 127.0.0.1 (4420 =
# port 1, 4421 = port 2); the host connects to each port through /dev/nvme-fabrics (no nvme-cli).
# nvme-core is loaded with multipath=N first, so the kernel does not merge the two controllers'
# namespaces into one nvmeXnY head: each controller gets its own disk (nvme0n1, nvme1n1), two
# paths with the same wwid for dm-multipath to group. Port 1's ANA group 1 starts optimized,
# port 2's non-optimized.
#
# Facts (measured in this VM, Debian 6.1 kernel; it has no nvme-loop, hence TCP over loopback):
#   - nvme-core's `multipath` parameter is read-only once loaded: it must be loaded with
#     multipath=N before anything (nvme-tcp, nvme-fabrics) pulls it in. The kernel then logs
#     "Found shared namespace 1, but multipathing not supported" for the second path and gives
#     each controller its own disk nvme<controller>n1; no nvmeXcYnZ, no head disk.
#   - configfs is a module: mount it after nvmet is loaded. lo is up (vm-run's init).
#   - /dev/nvme-fabrics takes one write of comma-separated key=value options, in any order
#     (nqn=, transport=, traddr=, trsvcid=, hostnqn=, ...), and connects before the write
#     returns; reading the same open file back gives "instance=N,cntlid=M". After a failed write
#     it reads "instance=-1,cntlid=-1," and the list of accepted options. A second connect to
#     the same port fails with EALREADY, an unknown option with EINVAL.
#   - The namespace scan that adds the disk is asynchronous: wait for it.
#   - Both paths have the same wwid, uuid.<device_uuid> (nvmet generates a random device_uuid
#     unless one is written), the same serial, model and subsysnqn; device/address and
#     device/cntlid tell them apart. nvmet's model and serial are space-padded (40 and 20 bytes).
#   - nvmet's configfs: ports/<n>/ana_groups/1/ana_state exists from the start (group 1 is every
#     namespace's default ana_grpid) and is per port, so one namespace is optimized through one
#     port and not through the other. Accepted: optimized, non-optimized, inaccessible,
#     persistent-loss, change. Each write bumps the ANA log's change count.
#   - With multipath=N the host reads no ANA log: the disks have no ana_grpid/ana_state
#     attributes; the state is visible through admin commands only (`probe`). Identify says
#     CMIC 0x0b (ANA reporting), ANACAP 0x1f, ANATT 10 s, ANAGRPMAX = NANAGRPID = 128.
#   - I/O through an inaccessible port fails with NVMe status sct 3 / sc 2 (a path error):
#     at once for dm-multipath's fail-fast requests, after nvme-core's max_retries (5) otherwise.
set -uo pipefail
source "${BASH_SOURCE[0]%/*}/keel-guest.sh"

NQN=keel-ana-test
NS_UUID=4b45454c-414e-4154-8573-000000000001   # fixed, so the wwid is the same on every run
IMAGE=/tmp/keel-ana-test.img
CFG=/sys/kernel/config/nvmet
SUBSYS=$CFG/subsystems/$NQN
PORTS=(1 2)
port_trsvcid() { echo $((4419 + $1)); }

die() { echo "nvme-ana-setup: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------- up
load_modules() {
  local value
  if [ -d /sys/module/nvme_core ]; then
    read -r value < /sys/module/nvme_core/parameters/multipath
    [ "$value" = N ] || die "nvme-core is already loaded with multipath=$value (needs N)"
  else
    modprobe nvme-core multipath=N || die "modprobe nvme-core multipath=N"
  fi
  read -r value < /sys/module/nvme_core/parameters/multipath
  [ "$value" = N ] || die "nvme-core multipath=$value after loading it with multipath=N"
  modprobe -a nvmet nvmet-tcp nvme-fabrics nvme-tcp loop || die "modprobe"
  mountpoint -q /sys/kernel/config || mount -t configfs configfs /sys/kernel/config \
    || die "mount configfs"
  [ -d "$CFG" ] || die "$CFG missing"
  [ -c /dev/nvme-fabrics ] || die "/dev/nvme-fabrics missing"
  ip link set lo up || die "lo"
}

# target_up: the subsystem, its namespace 1 on a loop device, two ports linked to it.
target_up() {
  local loopdev p port
  [ -d "$SUBSYS" ] && die "$SUBSYS exists already (run down first)"
  truncate -s 128M "$IMAGE" || die "truncate $IMAGE"
  loopdev=$(losetup --find --show "$IMAGE") || die "losetup $IMAGE"
  mkdir "$SUBSYS" || die "mkdir $SUBSYS"
  echo 1 > "$SUBSYS/attr_allow_any_host"
  echo keel-ana-test > "$SUBSYS/attr_serial"
  echo "Keel ANA test" > "$SUBSYS/attr_model"
  mkdir "$SUBSYS/namespaces/1" || die "mkdir namespace 1"
  echo "$loopdev" > "$SUBSYS/namespaces/1/device_path"
  echo "$NS_UUID" > "$SUBSYS/namespaces/1/device_uuid"
  echo 1 > "$SUBSYS/namespaces/1/ana_grpid"
  echo 1 > "$SUBSYS/namespaces/1/enable" || die "enable namespace 1 ($loopdev)"
  for p in "${PORTS[@]}"; do
    port=$CFG/ports/$p
    mkdir "$port" || die "mkdir $port"
    echo tcp > "$port/addr_trtype"
    echo ipv4 > "$port/addr_adrfam"
    echo 127.0.0.1 > "$port/addr_traddr"
    port_trsvcid "$p" > "$port/addr_trsvcid"
    # Linking the first subsystem enables the port (it starts listening).
    ln -s "$SUBSYS" "$port/subsystems/$NQN" || die "link port $p to $NQN"
  done
  set_ana 1 optimized && set_ana 2 non-optimized
}

# connect PORT: one host controller to the port; prints the kernel's answer.
connect() {
  local fd answer
  exec {fd}<> /dev/nvme-fabrics || return 1
  printf 'nqn=%s,transport=tcp,traddr=127.0.0.1,trsvcid=%s\n' "$NQN" "$(port_trsvcid "$1")" >&$fd \
    || { exec {fd}>&-; return 1; }
  read -r -u $fd answer
  exec {fd}>&-
  echo "port $1: $answer"
}

# nvme_disks: sets NVME_DISKS to the nvme disks that have their device node.
nvme_disks() {
  local d
  NVME_DISKS=()
  for d in /sys/block/nvme*; do
    [ -e "$d/dev" ] && [ -b "/dev/${d##*/}" ] && NVME_DISKS+=("${d##*/}")
  done
}
disks_at_least() { nvme_disks; [ ${#NVME_DISKS[@]} -ge "$1" ]; }

up() {
  local p
  load_modules
  target_up
  for p in "${PORTS[@]}"; do connect "$p" || die "connect to port $p"; done
  keel_wait 30 disks_at_least 2 || die "${#NVME_DISKS[@]} of 2 nvme disks after 30 s"
  show
}

# ---------------------------------------------------------------------------------------- show
# attr FILE: the first line of a sysfs/configfs file in brackets (trailing blanks kept: model and
# serial are space-padded), or - when it cannot be read.
attr() { local v; if IFS= read -r v < "$1"; then printf '[%s]' "$v"; else printf -- '-'; fi 2> /dev/null; }

show() {
  local d c disk a p
  echo "nvme-core multipath=$(attr /sys/module/nvme_core/parameters/multipath)"
  for c in /sys/class/nvme/nvme*; do
    [ -e "$c" ] || continue
    printf '%s: state=%s transport=%s address=%s cntlid=%s subsysnqn=%s\n' "${c##*/}" \
      "$(attr "$c/state")" "$(attr "$c/transport")" "$(attr "$c/address")" "$(attr "$c/cntlid")" \
      "$(attr "$c/subsysnqn")"
  done
  for d in /sys/block/nvme*; do
    [ -e "$d" ] || continue
    disk=${d##*/}
    echo "$disk:"
    for a in dev size wwid nsid; do printf '  %-20s %s\n' "$a" "$(attr "$d/$a")"; done
    printf '  %-20s %s\n' "device ->" "$(readlink "$d/device")"
    for a in model serial firmware_rev transport address cntlid subsysnqn state; do
      printf '  %-20s %s\n' "device/$a" "$(attr "$d/device/$a")"
    done
    for a in ana_grpid ana_state; do
      if [ -e "$d/$a" ]; then printf '  %-20s %s\n' "$a" "$(attr "$d/$a")"
      else printf '  %-20s %s\n' "$a" "(no such attribute)"; fi
    done
  done
  for p in "${PORTS[@]}"; do
    [ -e "$CFG/ports/$p/ana_groups/1/ana_state" ] \
      && echo "target port $p (trsvcid $(port_trsvcid "$p")) ANA group 1: $(attr "$CFG/ports/$p/ana_groups/1/ana_state")"
  done
}

# ------------------------------------------------------------------------------------- set-ana
# set_ana PORT STATE: the state of ANA group 1 on the target port. The target sends an ANA-change
# asynchronous event to the controllers connected through the port.
set_ana() {
  local f=$CFG/ports/$1/ana_groups/1/ana_state
  [ -e "$f" ] || die "no $f"
  echo "$2" > "$f" || die "write $2 to $f"
}

# ---------------------------------------------------------------------------------------- down
# down: delete every host controller of the subsystem, then take the target apart. Errors are
# ignored: used on the way out.
down() {
  local c nqn p loopdev=
  for c in /sys/class/nvme/nvme*; do
    [ -e "$c/subsysnqn" ] || continue
    read -r nqn < "$c/subsysnqn" && [ "$nqn" = "$NQN" ] && echo 1 > "$c/delete_controller"
  done 2> /dev/null
  if [ -d "$SUBSYS" ]; then
    for p in "$CFG"/ports/*; do
      [ -e "$p" ] || continue
      rm -f "$p/subsystems/$NQN"
      rmdir "$p" 2> /dev/null
    done
    read -r loopdev < "$SUBSYS/namespaces/1/device_path" 2> /dev/null
    echo 0 > "$SUBSYS/namespaces/1/enable" 2> /dev/null
    rmdir "$SUBSYS/namespaces/1" "$SUBSYS" 2> /dev/null
  fi
  [ -n "$loopdev" ] && losetup -d "$loopdev" 2> /dev/null
  rm -f "$IMAGE"
  return 0
}

# --------------------------------------------------------------------------------------- probe
# probe DEV: through NVME_IOCTL_ADMIN_CMD on the namespace block device: Identify Controller
# (CMIC, ANATT, ANACAP, ANAGRPMAX, NANAGRPID), Identify Namespace (NMIC, ANAGRPID) and the ANA
# log page (the first 64 bytes, then decoded).
probe() {
  python3 - "$1" <<'PY'
import ctypes, fcntl, os, struct, sys

class PassthruCmd(ctypes.Structure):  # struct nvme_passthru_cmd (linux/nvme_ioctl.h)
    _fields_ = [("opcode", ctypes.c_uint8), ("flags", ctypes.c_uint8), ("rsvd1", ctypes.c_uint16),
                ("nsid", ctypes.c_uint32), ("cdw2", ctypes.c_uint32), ("cdw3", ctypes.c_uint32),
                ("metadata", ctypes.c_uint64), ("addr", ctypes.c_uint64),
                ("metadata_len", ctypes.c_uint32), ("data_len", ctypes.c_uint32)] + \
               [("cdw%d" % i, ctypes.c_uint32) for i in range(10, 16)] + \
               [("timeout_ms", ctypes.c_uint32), ("result", ctypes.c_uint32)]

assert ctypes.sizeof(PassthruCmd) == 72
NVME_IOCTL_ID = 0x4E40                 # _IO('N', 0x40)
NVME_IOCTL_ADMIN_CMD = 0xC0484E41      # _IOWR('N', 0x41, struct nvme_admin_cmd)
ANA_STATES = {1: "optimized", 2: "non-optimized", 3: "inaccessible", 4: "persistent-loss",
              15: "change"}

dev = sys.argv[1]
fd = os.open(dev, os.O_RDONLY)
nsid = fcntl.ioctl(fd, NVME_IOCTL_ID)

def admin(opcode, nsid, cdw10, length=4096):
    buf = ctypes.create_string_buffer(length)
    cmd = PassthruCmd(opcode=opcode, nsid=nsid, addr=ctypes.addressof(buf), data_len=length,
                      cdw10=cdw10)
    status = fcntl.ioctl(fd, NVME_IOCTL_ADMIN_CMD, cmd, True)
    return status, cmd.result, buf.raw

print("%s: NVME_IOCTL_ID -> nsid %d" % (dev, nsid))
st, res, ctrl = admin(0x06, 0, 1)
print("Identify Controller: status 0x%x" % st)
if st == 0:
    print("  CMIC (76) 0x%02x: ANA reporting %s" % (ctrl[76], "yes" if ctrl[76] & 8 else "no"))
    print("  ANATT (342) %d s, ANACAP (343) 0x%02x" % (ctrl[342], ctrl[343]))
    print("  ANAGRPMAX (344-347) %d, NANAGRPID (348-351) %d" % struct.unpack_from("<II", ctrl, 344))
    print("  MN [%s] SN [%s] FR [%s] CNTLID %d" % (ctrl[24:64].decode().rstrip(),
          ctrl[4:24].decode().rstrip(), ctrl[64:72].decode().rstrip(),
          struct.unpack_from("<H", ctrl, 78)[0]))
st, res, ns = admin(0x06, nsid, 0)
print("Identify Namespace %d: status 0x%x" % (nsid, st))
if st == 0:
    print("  NMIC (30) 0x%02x, ANAGRPID (92-95) %d" % (ns[30], struct.unpack_from("<I", ns, 92)[0]))
numdl = 4096 // 4 - 1
st, res, log = admin(0x02, 0xFFFFFFFF, 0x0C | (1 << 15) | (numdl << 16))
print("Get Log Page ANA (0x0c, RAE): status 0x%x" % st)
if st == 0:
    for off in range(0, 64, 16):
        print("  %04x: %s" % (off, " ".join("%02x" % b for b in log[off:off + 16])))
    chgcnt, ngrps = struct.unpack_from("<QH", log, 0)
    print("  change count %d, %d group descriptor(s)" % (chgcnt, ngrps))
    off = 16
    for _ in range(ngrps):
        grpid, nnsids, gchg, state = struct.unpack_from("<IIQB", log, off)
        nsids = struct.unpack_from("<%dI" % nnsids, log, off + 32)
        print("  group %d: state 0x%02x (%s), change count %d, nsids %s" % (
              grpid, state, ANA_STATES.get(state & 0xF, "?"), gchg, list(nsids)))
        off += 32 + 4 * nnsids
PY
}

case ${1:-} in
  up) up ;;
  show) show ;;
  set-ana)
    [ $# = 3 ] && [[ $2 == [12] ]] || die "usage: set-ana 1|2 STATE"
    set_ana "$2" "$3"
    echo "target port $2 ANA group 1: $(attr "$CFG/ports/$2/ana_groups/1/ana_state")" ;;
  probe) [ $# = 2 ] || die "usage: probe /dev/nvmeXnY"; probe "$2" ;;
  down) down ;;
  *) sed -n '4,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
