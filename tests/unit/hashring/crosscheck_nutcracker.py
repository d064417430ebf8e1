#!/usr/bin/python3
"""Checks ketama_reference.py against a real nutcracker (twemproxy) binary.

    /usr/bin/python3 tests/unit/hashring/crosscheck_nutcracker.py [path/to/nutcracker]

Starts nutcracker in front of fake Redis servers (sockets that record which key reached
them and answer a nil), sends GET for each key and compares the server it chose with the
reference's prediction. Not part of the unit tests: it needs nutcracker and free ports.
Exit status 0 when every key matches.
"""

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ketama_reference as ref  # noqa: E402


class FakeServer:
    """Accepts connections, records (server index, key) for each GET, replies nil."""

    def __init__(self, index, seen):
        self.index, self.seen = index, seen
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self.accept_loop, daemon=True).start()

    def accept_loop(self):
        while True:
            conn, _ = self.sock.accept()
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def serve(self, conn):
        buf = b''
        while True:
            data = conn.recv(65536)
            if not data:
                return
            buf += data
            while True:
                parsed = parse_command(buf)
                if parsed is None:
                    break
                args, buf = parsed
                self.seen.append((self.index, args[1]))
                conn.sendall(b'$-1\r\n')


def parse_command(buf):
    """One RESP array of bulk strings from the front of buf: (args, rest) or None."""
    if not buf.startswith(b'*') or b'\r\n' not in buf:
        return None
    end = buf.index(b'\r\n')
    count, pos, args = int(buf[1:end]), end + 2, []
    for _ in range(count):
        end = buf.find(b'\r\n', pos)
        if end < 0:
            return None
        length = int(buf[pos + 1:end])
        if len(buf) < end + 4 + length:
            return None
        args.append(buf[end + 2:end + 2 + length])
        pos = end + 4 + length
    return args, buf[pos:]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def check(nutcracker, workdir, members, hash_name, distribution, keys, predict):
    seen = []
    servers = [FakeServer(i, seen) for i in range(len(members))]
    listen = free_port()
    conf = os.path.join(workdir, 'nutcracker.yml')
    with open(conf, 'w') as f:
        f.write('pool:\n  listen: 127.0.0.1:%d\n  hash: %s\n  distribution: %s\n'
                '  redis: true\n  servers:\n' % (listen, hash_name, distribution))
        for server, (name, weight) in zip(servers, members):
            f.write('   - 127.0.0.1:%d:%d %s\n' % (server.port, weight, name))
    proc = subprocess.Popen([nutcracker, '-c', conf, '-s', str(free_port()),
                             '-o', os.path.join(workdir, 'nutcracker.log')])
    mismatches = 0
    try:
        for _ in range(50):
            try:
                client = socket.create_connection(('127.0.0.1', listen), timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError('nutcracker did not start; see nutcracker.log')
        with client:
            for key in keys:
                before = len(seen)
                client.sendall(b'*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n' % (len(key), key))
                assert client.recv(64) == b'$-1\r\n'
                server, got = seen[before]
                assert got == key
                if server != predict(key):
                    mismatches += 1
                    print('  MISMATCH %r: nutcracker chose %d, reference %d'
                          % (key, server, predict(key)))
    finally:
        proc.kill()
        proc.wait()
    print('%-7s %-9s %2d members %4d keys: %d mismatches'
          % (distribution, hash_name, len(members), len(keys), mismatches))
    return mismatches


def ketama(members, hash_fn):
    continuum = ref.ketama_continuum(members)
    return lambda key: ref.ketama_locate(continuum, hash_fn(key) if key else 0)


def main():
    nutcracker = sys.argv[1] if len(sys.argv) > 1 else 'nutcracker'
    keys = (ref.RING_KEYS + [b'k%d' % i for i in range(300)]
            + [bytes([0x80 + i % 128]) + b'x%d' % i for i in range(100)])
    three = [('shard1', 1), ('shard2', 1), ('shard3', 1)]
    weighted = [('alpha', 1), ('beta', 2), ('gamma', 3), ('delta', 10)]
    twenty_five = [('s%d' % i, 1) for i in range(25)]  # 156 points each (float rounding)
    lopsided = [('big', 100), ('small', 1)]  # 'small' gets no points
    modula = [('a', 1), ('b', 2), ('c', 3)]
    mismatches = 0
    with tempfile.TemporaryDirectory() as workdir:
        # The empty key: twemproxy routes it by hash 0 rather than hashing it.
        mismatches += check(nutcracker, workdir, three, 'fnv1a_64', 'ketama', keys + [b''],
                            ketama(three, ref.fnv1a_64))
        mismatches += check(nutcracker, workdir, weighted, 'md5', 'ketama', keys,
                            ketama(weighted, ref.md5))
        for name in ['fnv1a_64', 'fnv1_64', 'fnv1a_32', 'fnv1_32', 'crc32', 'crc32a', 'md5']:
            mismatches += check(nutcracker, workdir, twenty_five, name, 'ketama', keys,
                                ketama(twenty_five, ref.HASHES[name]))
        mismatches += check(nutcracker, workdir, lopsided, 'fnv1a_64', 'ketama', keys,
                            ketama(lopsided, ref.fnv1a_64))
        mismatches += check(nutcracker, workdir, modula, 'fnv1a_64', 'modula', keys,
                            lambda key: ref.modula_locate(modula, ref.fnv1a_64(key)))
    return 1 if mismatches else 0


if __name__ == '__main__':
    sys.exit(main())
