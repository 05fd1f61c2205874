"""Builds a compile bomb from a real plugin component: the largest core module inside
it gets extra functions with long straight-line bodies over thousands of locals, which
take a compiler far longer (and far more memory) to compile than their size suggests.
The component stays valid and exports what a plugin must, so only the compile budget
stops it. Used by tests/test_security.py; run directly to write one:

    python tests/support/compile_bomb.py in.wasm out.wasm [functions] [ops] [locals]
"""

from __future__ import annotations

import sys


def leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_leb(data: bytes, i: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def sections(data: bytes, start: int = 8) -> list[tuple[int, bytes]]:
    out, i = [], start
    while i < len(data):
        sid = data[i]
        size, i = read_leb(data, i + 1)
        out.append((sid, data[i:i + size]))
        i += size
    return out


def section(sid: int, content: bytes) -> bytes:
    return bytes([sid]) + leb(len(content)) + content


def vec_items(content: bytes) -> tuple[int, bytes]:
    """(count, the bytes after the count) of a vector section."""
    n, i = read_leb(content, 0)
    return n, content[i:]


def bomb_body(ops: int, nlocals: int) -> bytes:
    body = bytearray(leb(1) + leb(nlocals) + b"\x7e")  # nlocals i64 locals
    # Start from memory, so nothing folds to a constant.
    for i in range(nlocals):
        body += b"\x41\x00" + b"\x29\x03" + leb(8 * i) + b"\x21" + leb(i)  # i64.load
    for i in range(ops):
        a, b, c = i % nlocals, (i * 7 + 3) % nlocals, (i * 13 + 5) % nlocals
        body += b"\x20" + leb(a) + b"\x20" + leb(b) + b"\x7c" + b"\x21" + leb(c)  # c = a + b
    # Every local ends in memory, so no computation is dead and all stay live.
    for i in range(nlocals):
        body += b"\x41\x00" + b"\x20" + leb(i) + b"\x37\x03" + leb(8 * i)  # i64.store
    body += b"\x0b"
    return bytes(body)


def inflate_module(module: bytes, functions: int, ops: int, nlocals: int) -> bytes:
    secs = sections(module)
    ntypes = 0
    for sid, content in secs:
        if sid == 1:
            ntypes, _ = vec_items(content)
    body = bomb_body(ops, nlocals)
    out = bytearray(module[:8])
    for sid, content in secs:
        if sid == 1:  # types: add () -> ()
            n, rest = vec_items(content)
            content = leb(n + 1) + rest + b"\x60\x00\x00"
        elif sid == 3:  # functions: add `functions` of the new type
            n, rest = vec_items(content)
            content = leb(n + functions) + rest + leb(ntypes) * functions
        elif sid == 10:  # code: their bodies
            n, rest = vec_items(content)
            content = leb(n + functions) + rest + (leb(len(body)) + body) * functions
        out += section(sid, content)
    return bytes(out)


def compile_bomb(component: bytes, functions: int = 6, ops: int = 250_000, nlocals: int = 4_000) -> bytes:
    secs = sections(component)
    modules = [i for i, (sid, _) in enumerate(secs) if sid == 1]
    target = max(modules, key=lambda i: len(secs[i][1]))
    out = bytearray(component[:8])
    for i, (sid, content) in enumerate(secs):
        if i == target:
            content = inflate_module(content, functions, ops, nlocals)
        out += section(sid, content)
    return bytes(out)


if __name__ == "__main__":
    src, dst = sys.argv[1], sys.argv[2]
    args = [int(a) for a in sys.argv[3:6]]
    data = compile_bomb(open(src, "rb").read(), *args)
    open(dst, "wb").write(data)
    print(len(data))
