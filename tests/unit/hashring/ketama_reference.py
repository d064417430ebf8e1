#!/usr/bin/python3
"""Independent reference for the golden constants in hash_test.cc and ring_test.cc.

Written from twemproxy 0.5.0's behaviour (src/hashkit/nc_*.c) and the published algorithm
descriptions, in plain Python (stdlib only), so that the C++ code is checked against
something that shares none of its code or libraries except zlib/hashlib's CRC-32 and MD5.

    /usr/bin/python3 tests/unit/hashring/ketama_reference.py

prints every constant the tests pin; re-run it and compare after changing anything here.
crosscheck_nutcracker.py checks this reference against a real nutcracker 0.5.0.
Keys are bytes; the twemproxy FNV variants sign-extend bytes >= 0x80 (its `key` is a signed
`const char *` and it casts each byte to uint32_t/uint64_t before xor-ing it in).
"""

import hashlib
import math
import struct
import zlib

M32 = 0xFFFFFFFF
M64 = 0xFFFFFFFFFFFFFFFF


def signed_byte(b):
    return b - 256 if b >= 0x80 else b


# --- FNV, as twemproxy computes it ---------------------------------------------------

def fnv1_64(key):  # 64-bit state, sign-extended bytes, truncated result
    h = 0xCBF29CE484222325
    for b in key:
        h = (h * 0x100000001B3) & M64
        h ^= signed_byte(b) & M64
    return h & M32


def fnv1a_64(key):  # twemproxy keeps only a 32-bit state: low halves of basis and prime
    h = 0xCBF29CE484222325 & M32
    for b in key:
        h ^= signed_byte(b) & M32
        h = (h * (0x100000001B3 & M32)) & M32
    return h


def fnv1_32(key):
    h = 2166136261
    for b in key:
        h = (h * 16777619) & M32
        h ^= signed_byte(b) & M32
    return h


def fnv1a_32(key):
    h = 2166136261
    for b in key:
        h ^= signed_byte(b) & M32
        h = (h * 16777619) & M32
    return h


# --- CRC-32 and MD5 ------------------------------------------------------------------

def crc32(key):  # libmemcached-compatible: 15 bits from the top half
    return (zlib.crc32(key) >> 16) & 0x7FFF


def crc32a(key):
    return zlib.crc32(key) & M32


def md5(key):
    return struct.unpack('<I', hashlib.md5(key).digest()[:4])[0]


# --- MurmurHash3_x86_32, seed 0 --------------------------------------------------------

def rotl32(x, r):
    return ((x << r) | (x >> (32 - r))) & M32


def fmix32(h):
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def murmur3(key, seed=0):
    c1, c2 = 0xCC9E2D51, 0x1B873593
    h = seed
    nblocks = len(key) // 4
    for i in range(nblocks):
        k = struct.unpack_from('<I', key, i * 4)[0]
        k = (k * c1) & M32
        k = rotl32(k, 15)
        k = (k * c2) & M32
        h ^= k
        h = rotl32(h, 13)
        h = (h * 5 + 0xE6546B64) & M32
    tail = key[nblocks * 4:]
    k = 0
    for i in reversed(range(len(tail))):
        k ^= tail[i] << (8 * i)
    if tail:
        k = (k * c1) & M32
        k = rotl32(k, 15)
        k = (k * c2) & M32
        h ^= k
    h ^= len(key)
    return fmix32(h)


# --- XXH64 and XXH3_64bits (inputs up to 16 bytes), seed 0 -----------------------------

P64_1 = 0x9E3779B185EBCA87
P64_2 = 0xC2B2AE3D27D4EB4F
P64_3 = 0x165667B19E3779F9
P64_4 = 0x85EBCA77C2B2AE63
P64_5 = 0x27D4EB2F165667C5


def rotl64(x, r):
    return ((x << r) | (x >> (64 - r))) & M64


def xxh64_round(acc, lane):
    acc = (acc + lane * P64_2) & M64
    acc = rotl64(acc, 31)
    return (acc * P64_1) & M64


def xxh64_merge(acc, val):
    acc ^= xxh64_round(0, val)
    return (acc * P64_1 + P64_4) & M64


def xxh64_avalanche(h):
    h ^= h >> 33
    h = (h * P64_2) & M64
    h ^= h >> 29
    h = (h * P64_3) & M64
    h ^= h >> 32
    return h


def xxh64_full(key, seed=0):
    n = len(key)
    p = 0
    if n >= 32:
        v = [(seed + P64_1 + P64_2) & M64, (seed + P64_2) & M64, seed, (seed - P64_1) & M64]
        while p + 32 <= n:
            for i in range(4):
                v[i] = xxh64_round(v[i], struct.unpack_from('<Q', key, p + 8 * i)[0])
            p += 32
        h = (rotl64(v[0], 1) + rotl64(v[1], 7) + rotl64(v[2], 12) + rotl64(v[3], 18)) & M64
        for lane in v:
            h = xxh64_merge(h, lane)
    else:
        h = (seed + P64_5) & M64
    h = (h + n) & M64
    while p + 8 <= n:
        h ^= xxh64_round(0, struct.unpack_from('<Q', key, p)[0])
        h = (rotl64(h, 27) * P64_1 + P64_4) & M64
        p += 8
    if p + 4 <= n:
        h ^= (struct.unpack_from('<I', key, p)[0] * P64_1) & M64
        h = (rotl64(h, 23) * P64_2 + P64_3) & M64
        p += 4
    while p < n:
        h ^= (key[p] * P64_5) & M64
        h = (rotl64(h, 11) * P64_1) & M64
        p += 1
    return xxh64_avalanche(h)


# First 64 bytes of XXH3's default secret (xxhash.h, XXH3_kSecret).
XXH3_SECRET = bytes([
    0xb8, 0xfe, 0x6c, 0x39, 0x23, 0xa4, 0x4b, 0xbe, 0x7c, 0x01, 0x81, 0x2c, 0xf7, 0x21, 0xad, 0x1c,
    0xde, 0xd4, 0x6d, 0xe9, 0x83, 0x90, 0x97, 0xdb, 0x72, 0x40, 0xa4, 0xa4, 0xb7, 0xb3, 0x67, 0x1f,
    0xcb, 0x79, 0xe6, 0x4e, 0xcc, 0xc0, 0xe5, 0x78, 0x82, 0x5a, 0xd0, 0x7d, 0xcc, 0xff, 0x72, 0x21,
    0xb8, 0x08, 0x46, 0x74, 0xf7, 0x43, 0x24, 0x8e, 0xe0, 0x35, 0x90, 0xe6, 0x81, 0x3a, 0x26, 0x4c,
    0x3c, 0x28, 0x52, 0xbb, 0x91, 0xc3, 0x00, 0xcb,
])


def sec64(off):
    return struct.unpack_from('<Q', XXH3_SECRET, off)[0]


def sec32(off):
    return struct.unpack_from('<I', XXH3_SECRET, off)[0]


def xxh3_avalanche(h):
    h ^= h >> 37
    h = (h * 0x165667919E3779F9) & M64
    h ^= h >> 32
    return h


def xxh3_rrmxmx(h, n):
    h ^= rotl64(h, 49) ^ rotl64(h, 24)
    h = (h * 0x9FB21C651E98DF25) & M64
    h ^= (h >> 35) + n
    h = (h * 0x9FB21C651E98DF25) & M64
    h ^= h >> 28
    return h


def xxh3_full(key):  # seed 0, default secret; only the short-input paths
    n = len(key)
    assert n <= 16, "reference implements XXH3 for inputs up to 16 bytes only"
    if n == 0:
        return xxh64_avalanche(sec64(56) ^ sec64(64))
    if n <= 3:
        combined = (key[0] << 16) | (key[n >> 1] << 24) | key[n - 1] | (n << 8)
        return xxh64_avalanche(combined ^ ((sec32(0) ^ sec32(4)) & M32))
    if n <= 8:
        lo = struct.unpack_from('<I', key, 0)[0]
        hi = struct.unpack_from('<I', key, n - 4)[0]
        keyed = ((hi + (lo << 32)) & M64) ^ (sec64(8) ^ sec64(16))
        return xxh3_rrmxmx(keyed, n)
    lo = struct.unpack_from('<Q', key, 0)[0] ^ (sec64(24) ^ sec64(32))
    hi = struct.unpack_from('<Q', key, n - 8)[0] ^ (sec64(40) ^ sec64(48))
    product = lo * hi
    fold = (product & M64) ^ (product >> 64)
    swapped = struct.unpack('<Q', struct.pack('>Q', lo))[0]
    return xxh3_avalanche((n + swapped + hi + fold) & M64)


def xxh64(key):
    return xxh64_full(key) & M32


def xxh3(key):
    return xxh3_full(key) & M32


HASHES = {
    'fnv1a_64': fnv1a_64, 'fnv1_64': fnv1_64, 'fnv1a_32': fnv1a_32, 'fnv1_32': fnv1_32,
    'crc32': crc32, 'crc32a': crc32a, 'md5': md5, 'murmur3': murmur3,
    'xxh64': xxh64, 'xxh3': xxh3,
}


# --- Distributions ---------------------------------------------------------------------

def f32(x):  # round a Python float (a C double) to the nearest C float
    return struct.unpack('<f', struct.pack('<f', x))[0]


def ketama_points_for(weight, total_weight, n):
    """twemproxy's per-server point count, evaluated in float like its C expression:
    floorf((float)(pct * 160 / 4 * (float)n + 0.0000000001)) * 4, pct = (float)w / (float)t.
    Every float operation is rounded separately (exact for + - * / of floats)."""
    pct = f32(f32(weight) / f32(total_weight))
    x = f32(f32(f32(pct * 160) / 4) * f32(n))
    x = f32(x + 0.0000000001)  # the epsilon is a double; the sum is cast back to float
    return int(f32(math.floor(x) * 4))


def ketama_continuum(members):
    """members: list of (name: str, weight: int). Returns sorted [(value, member_index)];
    ties keep member order (Python's sort is stable)."""
    total = sum(w for _, w in members)
    points = []
    for index, (name, weight) in enumerate(members):
        for i in range(ketama_points_for(weight, total, len(members)) // 4):
            digest = hashlib.md5(('%s-%d' % (name, i)).encode()).digest()
            for k in range(4):
                points.append((struct.unpack_from('<I', digest, 4 * k)[0], index))
    points.sort(key=lambda p: p[0])
    return points


def ketama_locate(continuum, h):
    lo, hi = 0, len(continuum)
    while lo < hi:  # first point with value >= h
        mid = (lo + hi) // 2
        if continuum[mid][0] < h:
            lo = mid + 1
        else:
            hi = mid
    return continuum[lo % len(continuum)][1]


def modula_locate(members, h):
    slots = [i for i, (_, w) in enumerate(members) for _ in range(w)]
    return slots[h % len(slots)]


def jump_bucket(key, buckets):  # Lamping & Veach 2014
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & M64
        j = int((b + 1) * (float(1 << 31) / float((key >> 33) + 1)))
    return b


def jump_locate(members, h):
    buckets = [i for i, (_, w) in enumerate(members) for _ in range(w)]
    return buckets[jump_bucket(h, len(buckets))]


# --- Published vectors the reference itself must reproduce -----------------------------

def self_check():
    assert fnv1a_32(b'a') == 0xE40C292C and fnv1_32(b'a') == 0x050C5D7E
    assert fnv1a_32(b'foobar') == 0xBF9CF968 and fnv1_32(b'foobar') == 0x31F0B262
    assert fnv1_64(b'foobar') == 0x340D8765A4DDA9C2 & M32  # FNV-1 64 "foobar", low half
    assert crc32a(b'123456789') == 0xCBF43926
    assert hashlib.md5(b'').hexdigest() == 'd41d8cd98f00b204e9800998ecf8427e'
    assert murmur3(b'') == 0 and murmur3(b'', 1) == 0x514E28B7
    assert murmur3(b'hello') == 0x248BFA47
    assert murmur3(b'The quick brown fox jumps over the lazy dog') == 0x2E4FF723
    assert xxh64_full(b'') == 0xEF46DB3751D8E999
    assert xxh3_full(b'') == 0x2D06800538D394C2


def c_string(key):
    """A C++ literal for `key`, as a std::string_view so that embedded NULs count."""
    out, escaped = '', False
    for b in key:
        c = chr(b)
        if 0x20 <= b < 0x7F and c not in '"\\':
            out += ('" "' if escaped and c in '0123456789abcdefABCDEF' else '') + c
            escaped = False
        else:
            out += '\\x%02x' % b
            escaped = True
    return '"%s"sv' % out


# Keys whose hashes the tests pin: short, long, empty, and bytes >= 0x80 (sign extension).
HASH_KEYS = [b'', b'a', b'foobar', b'hello', b'123456789', b'user:1000', b'\x80', b'\xff',
             b'caf\xc3\xa9', b'\xfe\xff\x00\x01', b'0123456789abcdef',
             b'The quick brown fox jumps over the lazy dog']

RING_KEYS = [b'foo', b'bar', b'baz', b'key:1', b'key:2', b'key:3', b'user:1000', b'user:1001',
             b'session:abc', b'a', b'b', b'c', b'hello', b'world', b'counter', b'queue:jobs',
             b'\xc3\xa9t\xc3\xa9', b'\xff\xfe', b'{tag}x', b'0']


def main():
    self_check()
    print('// hash vectors: key, then one value per function in HASHES order')
    for key in HASH_KEYS:
        values = []
        for name, fn in HASHES.items():
            if name == 'xxh3' and len(key) > 16:
                values.append('kNoVector')
            else:
                values.append('0x%08x' % fn(key))
        print('{%s, {%s}},' % (c_string(key), ', '.join(values)))

    shards = [('shard1', 1), ('shard2', 1), ('shard3', 1)]
    continuum = ketama_continuum(shards)
    print('\n// ketama shard1..3 fnv1a_64: %d points, first %s, last %s' %
          (len(continuum), continuum[0], continuum[-1]))
    for key in RING_KEYS:
        h = fnv1a_64(key)
        print('{%s, 0x%08x, %d},' % (c_string(key), h, ketama_locate(continuum, h)))

    weighted = [('alpha', 1), ('beta', 2), ('gamma', 3), ('delta', 10)]
    print('\n// ketama %s points per member: %s' % (
        weighted, [ketama_points_for(w, 16, 4) for _, w in weighted]))
    wc = ketama_continuum(weighted)
    print('// weighted: first points', wc[:3], 'last', wc[-1])
    for key in RING_KEYS[:10]:
        h = md5(key)
        print('{%s, %d},  // md5 0x%08x' % (c_string(key), ketama_locate(wc, h), h))

    for label, members in [('25 equal', [('s%d' % i, 1) for i in range(25)]),
                           ('100:1', [('big', 100), ('small', 1)]),
                           ('1:10', [('a', 1), ('b', 10)])]:
        total = sum(w for _, w in members)
        print('// points %s: %s' % (label, sorted({ketama_points_for(w, total, len(members))
                                                   for _, w in members})))

    print('\n// modula and jump, members a:1 b:2 c:3, key hash -> member')
    mj = [('a', 1), ('b', 2), ('c', 3)]
    for h in [0, 1, 5, 6, 7, 0xFFFFFFFF, 0x12345678, 0x9E3779B9, 1000003]:
        print('{0x%08x, %d, %d},' % (h, modula_locate(mj, h), jump_locate(mj, h)))
    print('// jump buckets: ', [(k, n, jump_bucket(k, n)) for k, n in
                                [(0, 1), (1, 10), (0xDEADBEEF, 100), (0xFFFFFFFF, 1000)]])


if __name__ == '__main__':
    main()
