#!/usr/bin/env python3
"""Regenerates the seed corpora of tests/fuzz from the unit tests and the example configs.

    python3 tests/fuzz/corpus/make_seeds.py

Each target's directory is rewritten: one small file per input, named by its content's hash
(as libFuzzer names corpus files). The fuzzers read them with their control-byte prefixes
(see the comment at the top of each *_fuzz.cc).
"""
import glob
import hashlib
import os
import re
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))

# A C++ string literal (not a raw one), and its escapes.
LITERAL = re.compile(r'(?<![A-Za-z0-9_])"((?:[^"\\\n]|\\.)*)"')
ESCAPES = {"n": b"\n", "r": b"\r", "t": b"\t", "\\": b"\\", '"': b'"', "'": b"'", "0": b"\0"}


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c != "\\":
            out += c.encode()
            i += 1
            continue
        e = text[i + 1]
        if e == "x":
            m = re.match(r"[0-9a-fA-F]{1,2}", text[i + 2:])
            out.append(int(m.group(0), 16))
            i += 2 + len(m.group(0))
        else:
            out += ESCAPES.get(e, e.encode())
            i += 2
    return bytes(out)


def literals(path):
    with open(os.path.join(ROOT, path)) as f:
        return [unescape(m.group(1)) for m in LITERAL.finditer(f.read())]


def raw_strings(path):
    with open(os.path.join(ROOT, path)) as f:
        return [m.group(1).encode() for m in re.finditer(r'R"\((.*?)\)"', f.read(), re.S)]


def command_lists(path):
    """Brace lists of string literals that start with a command name: {"MGET", "a", "b"}."""
    with open(os.path.join(ROOT, path)) as f:
        text = f.read()
    out = []
    for m in re.finditer(r'\{\s*("[A-Z][A-Z_]*"(?:\s*,\s*"(?:[^"\\]|\\.)*")*)\s*\}', text):
        out.append([unescape(x.group(1)) for x in LITERAL.finditer(m.group(1))])
    return out


def resp(words):
    out = b"*%d\r\n" % len(words)
    for w in words:
        out += b"$%d\r\n%s\r\n" % (len(w), w)
    return out


def write(target, inputs):
    d = os.path.join(HERE, target)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    seen = set()
    for data in inputs:
        name = hashlib.sha1(data).hexdigest()
        if name in seen:
            continue
        seen.add(name)
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print(f"{target}: {len(seen)} inputs")


def main():
    # Request parser: 3 control bytes (split at about half; default limits, or small ones).
    requests = [s for s in literals("tests/unit/resp/request_parser_test.cc") if b"\n" in s or s.startswith(b"*")]
    requests += [resp(words) for words in command_lists("tests/unit/commands/keys_test.cc")[:20]]
    requests.append(b"".join(requests[:6]))  # a pipeline
    seeds = []
    for r in requests:
        seeds.append(b"\xff\x7f\x00" + r)
        seeds.append(b"\x10\x00\x01" + r)
    write("request_parser", seeds)

    # Reply scanner: 2 control bytes (split at about a third).
    replies = [s for s in literals("tests/unit/resp/reply_scanner_test.cc") if s[:1] in (b"+", b"-", b":", b"$", b"*", b"?")]
    replies.append(b"*2\r\n:1\r\n" * 50 + b":2\r\n")  # deep nesting (AnyNestingDepthFrames)
    replies.append(b"".join(replies[:8]))          # a stream of replies
    write("reply_scanner", [b"\x55\x55" + r for r in replies])

    # Config loader: the example configs, and the configs of the loader's tests.
    shard = b'[[pool.shards]]\nname = "s"\nservers = ["127.0.0.1:7001"]\n'
    configs = []
    for path in sorted(glob.glob(os.path.join(ROOT, "conf", "examples", "*.toml"))):
        with open(path, "rb") as f:
            configs.append(f.read())
    configs += raw_strings("tests/unit/conf/loader_test.cc")
    for s in literals("tests/unit/conf/loader_test.cc"):
        if b"\n" in s and b"=" in s:
            configs.append(s if b"[[pool.shards]]" in s else s + shard)
    write("config_loader", configs)

    # Routing: mode byte 0 (a RESP request, then control bytes) with the commands of the
    # key and planner tests; mode byte 1 (all control bytes) with a few byte patterns.
    commands = command_lists("tests/unit/commands/keys_test.cc") + command_lists("tests/unit/routing/planner_test.cc")
    commands += command_lists("tests/unit/routing/replication_test.cc")
    controls = [b"", b"\x00" * 24, b"\x01\x02\x03\x04\x05\x06\x07\x08" * 4, b"\xff" * 24]
    seeds = []
    for i, words in enumerate(commands):
        seeds.append(b"\x00" + resp(words) + controls[i % len(controls)])
    seeds += [b"\x01" + c for c in controls[1:]]
    write("routing", seeds)


if __name__ == "__main__":
    main()
