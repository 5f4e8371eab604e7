# A workload nobody here wrote the runtime of: CPython with a large dict and a generator
# suspended mid-iteration, for the restore tests.
#   python3 bigdict.py LOG ENTRIES STEPS STEP_SECONDS
# Builds a dict of ENTRIES keys "k<i>" -> (i * 2654435761) % 2**32, then walks it through a
# generator in STEPS chunks, sleeping STEP_SECONDS per chunk, feeding "k<i>=<v>;" into a SHA-256
# and a running sum. Logs "ready pid=<pid>", "step <n> sum=<partial>" per chunk, and at the end
# "RESULT ok sha256=<hex> sum=<sum>" when what it walked matches a fresh recomputation (from the
# formula, not the dict), else "RESULT bad ...". Exit status 0 either way; 3 if the dict changed
# size. The test recomputes the digest and sum on its own.
import hashlib
import os
import sys
import time

log_path, entries, steps, step_s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
log = open(log_path, 'a', buffering=1)


def value(i):
    return (i * 2654435761) % 2**32


table = {f'k{i}': value(i) for i in range(entries)}
log.write(f'ready pid={os.getpid()} entries={len(table)}\n')


def chunks(d, n):
    """Yields n lists of "k=v;" items covering d in insertion order, keeping its place between yields."""
    it = iter(d.items())
    per = (len(d) + n - 1) // n
    for _ in range(n):
        part = []
        for k, v in it:
            part.append(f'{k}={v};')
            if len(part) == per:
                break
        yield part


digest = hashlib.sha256()
total = 0
for n, part in enumerate(chunks(table, steps), 1):
    for item in part:
        digest.update(item.encode())
        total += int(item[item.index('=') + 1:-1])
    log.write(f'step {n} sum={total}\n')
    time.sleep(step_s)

if len(table) != entries:
    log.write(f'RESULT bad dict has {len(table)} entries\n')
    sys.exit(3)
check = hashlib.sha256(''.join(f'k{i}={value(i)};' for i in range(entries)).encode())
expected = sum(value(i) for i in range(entries))
ok = check.hexdigest() == digest.hexdigest() and expected == total
log.write(f'RESULT {"ok" if ok else "bad"} sha256={digest.hexdigest()} sum={total}\n')
