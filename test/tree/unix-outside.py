# unix-outside.py ROLE DIR LOG
# server: binds DIR/ext-dgram.sock (datagrams) and listens on DIR/ext-stream.sock; logs every
#         datagram it gets ("got <text>") and accepts stream connections without reading them.
# dgram-client: a datagram socket connected to DIR/ext-dgram.sock sending "tick <n>" every 50 ms.
# stream-client: a stream socket connected to DIR/ext-stream.sock, idle.
# Each logs "ready" once set up.
import os, socket, sys, time

role, d, log = sys.argv[1], sys.argv[2], sys.argv[3]
out = open(log, 'a', buffering=1)
if role == 'server':
    dg = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    dg.bind(os.path.join(d, 'ext-dgram.sock'))
    ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ls.bind(os.path.join(d, 'ext-stream.sock'))
    ls.listen(4)
    ls.setblocking(False)
    held = []
    out.write('ready\n')
    while True:
        dg.settimeout(0.05)
        try:
            out.write('got %s\n' % dg.recv(100).decode())
        except socket.timeout:
            pass
        try:
            held.append(ls.accept()[0])
        except BlockingIOError:
            pass
elif role == 'dgram-client':
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.connect(os.path.join(d, 'ext-dgram.sock'))
    out.write('ready\n')
    n = 0
    while True:
        n += 1
        s.send(b'tick %d' % n)
        time.sleep(0.05)
else:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(os.path.join(d, 'ext-stream.sock'))
    out.write('ready fd=%d\n' % s.fileno())
    while True:
        time.sleep(1)
