"""pool.py LOGFILE [TASKS] [SLEEP_MS]

A ThreadPoolExecutor(max_workers=4) works through TASKS (default 200) small tasks. Task i sleeps
SLEEP_MS (default 50) plus i % 7 milliseconds, so a freeze finds workers in sleeps and in the
executor's queue waits, then computes digest(i): 64 rounds of SHA-256 over "task <i>", the
first 8 bytes of the last one as a little-endian number. Each worker logs "done <i> <value>"
when its task is finished. At the end the main thread checks every result against digest(i)
computed again, serially, and logs "RESULT ok <sum>" (sum of all values mod 2**64) or
"RESULT bad <what>" and exits 1.

Lines go to LOGFILE with one write(2) each on an O_APPEND descriptor: no buffers to lose in a
dump. The first line is "ready pid=<pid> tasks=<n> workers=4".
"""

import hashlib
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

WORKERS = 4
ROUNDS = 64


def digest(i):
    h = hashlib.sha256(f"task {i}".encode()).digest()
    for _ in range(ROUNDS - 1):
        h = hashlib.sha256(h).digest()
    return int.from_bytes(h[:8], "little")


def main():
    if len(sys.argv) < 2:
        sys.stderr.write("usage: pool.py LOGFILE [TASKS] [SLEEP_MS]\n")
        return 2
    tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    sleep_ms = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def log(line):
        os.write(fd, (line + "\n").encode())

    def work(i):
        time.sleep((sleep_ms + i % 7) / 1000)
        value = digest(i)
        log(f"done {i} {value} thread={threading.get_native_id()}")
        return value

    log(f"ready pid={os.getpid()} tasks={tasks} workers={WORKERS}")
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(work, i) for i in range(tasks)]
        results = [f.result() for f in futures]

    expected = [digest(i) for i in range(tasks)]
    wrong = [i for i in range(tasks) if results[i] != expected[i]]
    if wrong:
        log(f"RESULT bad tasks {wrong[:10]} of {len(wrong)} differ")
        return 1
    log(f"RESULT ok {sum(results) % 2**64}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
