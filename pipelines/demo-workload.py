#!/usr/bin/env python3
# The demo's workload: appends 1, 2, 3, ... to the file named by argv[1], ten numbers a second,
# until stopped. The count lives in memory and the file stays open, so after a dump and restore
# the numbers go on where they were: the file shows 1..N without a gap or a restart.
import sys
import time

out = open(sys.argv[1], 'a', buffering=1)  # line-buffered: each number is written at once
n = 0
while True:
    n += 1
    out.write(f'{n}\n')
    time.sleep(0.1)
