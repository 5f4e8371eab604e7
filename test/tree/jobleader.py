# jobleader.py SLAVE STATUSFILE PROGRAM [ARGS...]
# What a shell does for a foreground job: starts a session whose controlling terminal is SLAVE,
# runs PROGRAM in a group of its own with SLAVE as stdin, stdout and stderr, and makes that
# group the terminal's foreground group. Writes "exit N" or "signal N" to STATUSFILE when
# PROGRAM ends, then stays, leading the session, until it is killed.
import os
import signal
import sys

slave, status, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
os.setsid()
tty = os.open(slave, os.O_RDWR)  # a session leader without a terminal: this one becomes it
pid = os.fork()
if pid == 0:
    os.setpgid(0, 0)
    for fd in (0, 1, 2):
        os.dup2(tty, fd)
    os.execv(argv[0], argv)
try:
    os.setpgid(pid, pid)
except OSError:
    pass  # it did so itself and has exec'd already
os.tcsetpgrp(tty, pid)
_, st = os.waitpid(pid, 0)
with open(status + '.tmp', 'w') as f:
    f.write(f'exit {os.WEXITSTATUS(st)}\n' if os.WIFEXITED(st) else f'signal {os.WTERMSIG(st)}\n')
os.rename(status + '.tmp', status)
while True:
    signal.pause()
