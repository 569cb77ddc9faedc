#!/usr/bin/env python3
# write-verify.py: a write+verify workload on a block device (used by Tools/keeld-demo inside the VM).
#
#   write-verify.py DEVICE SECONDS [BLOCKS]
#
# Writes 4 KiB blocks with O_DIRECT|O_SYNC round-robin over the first BLOCKS blocks (default 256),
# each stamped with its block number and a generation, reads each back and compares. Prints one
# line a second (writes, errors, mismatches, longest stall), then a final verify pass over every
# block and a summary. Exit status 1 on any I/O error or mismatch.
import mmap, os, struct, sys, time

device, seconds = sys.argv[1], float(sys.argv[2])
blocks = int(sys.argv[3]) if len(sys.argv) > 3 else 256
fd = os.open(device, os.O_RDWR | os.O_DIRECT | os.O_SYNC)
buf = mmap.mmap(-1, 4096)
generation = [0] * blocks
writes = errors = mismatches = 0
longest = 0.0
last_done = start = time.monotonic()
next_report = start + 1

def stamp(block, gen):
    return struct.pack("<QQ", block, gen) * 256

while time.monotonic() - start < seconds:
    block = writes % blocks
    gen = generation[block] + 1
    buf.seek(0); buf.write(stamp(block, gen))
    try:
        os.pwritev(fd, [buf], block * 4096)
        generation[block] = gen
        os.preadv(fd, [buf], block * 4096)
        if buf[:4096] != stamp(block, gen):
            mismatches += 1
    except OSError as e:
        errors += 1
        print(f"I/O error on block {block}: {e}", flush=True)
    now = time.monotonic()
    longest = max(longest, now - last_done)
    last_done = now
    writes += 1
    if now >= next_report:
        print(f"workload t={now - start:5.1f}s writes={writes} errors={errors} mismatches={mismatches} longest_stall={longest:.2f}s", flush=True)
        next_report = now + 1

for block in range(blocks):
    if generation[block] == 0:
        continue
    os.preadv(fd, [buf], block * 4096)
    if buf[:4096] != stamp(block, generation[block]):
        mismatches += 1
print(f"workload summary: writes={writes} io_errors={errors} corrupted_blocks={mismatches} longest_stall={longest:.2f}s", flush=True)
sys.exit(1 if errors or mismatches else 0)
