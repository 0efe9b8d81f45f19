"""Emit (table, firstlineno, addr -> expected line) cases for
tests/unit/test-pyline.c, from the running interpreter.

Run under any CPython 3.8+:  python pyline_cases.py > cases.txt
(NLIB: how many of the standard library's modules to add, 400).
Output lines:
  C <format> <firstlineno> <tablelen> <hex table|-> <name>
  A <addr> <expected>          (expected = PyCode_Addr2Line, -1 = no line)
  X <addr> <oracle> <line>     oracle disagreement (reported, not tested)
Expected values come from the running interpreter's own C function
PyCode_Addr2Line (via ctypes) and are cross-checked against the
Python-level oracle for that version: dis.findlinestarts (3.8/3.9),
co_lines() (3.10), co_positions() and co_lines() (3.11+).
"""
import ctypes
import dis
import glob
import os
import sys
import types

V = sys.version_info[:2]
FMT = 1 if V < (3, 10) else 2 if V == (3, 10) else 3
addr2line = ctypes.pythonapi.PyCode_Addr2Line
addr2line.argtypes = [ctypes.py_object, ctypes.c_int]
addr2line.restype = ctypes.c_int

# -- tricky source -------------------------------------------------------
def gen_source():
    s = []
    a = s.append
    a("import functools, contextlib")
    a("def deco(f):\n    return f")
    a("@deco\n@functools.lru_cache(\n    maxsize=None)\ndef decorated(x,\n              y=1):\n    return (x +\n            y)")
    a("def multiline(a, b, c):\n    r = foo(a,\n            b,\n\n            c) if (a and\n                   b) else (\n        c)\n    return r")
    a("def loops(n):\n    t = 0\n    for i in range(n):\n        if i % 3:\n            continue\n        while t < i:\n            t += 1\n            if t > 100:\n                break\n    else:\n        t = -1\n    return t")
    a("def excs(x):\n    try:\n        y = 1 / x\n    except ZeroDivisionError as e:\n        y = e\n    except (TypeError,\n            ValueError):\n        raise\n    else:\n        y += 1\n    finally:\n        x = None\n    return y")
    a("def withs(p):\n    with open(p) as f, \\\n         contextlib.suppress(\n             OSError):\n        data = f.read()\n\n\n    return data")
    a("def gens(n):\n    yield 1\n    x = yield from range(\n        n)\n    yield [i * j for i in range(n)\n           for j in range(i)\n           if j]\n    return {k: v for k, v in\n            zip(range(n), range(n))}")
    a("async def coro(x):\n    async with x as y:\n        async for z in y:\n            await z\n    return [q async for q in x]")
    a("lam = (lambda x,\n        y: x +\n        y)")
    a("class K:\n    a = 1\n\n    def m(self):\n        return super().m()\n    @property\n    def p(self):\n        return [\n            1,\n            2]")
    # long function: > 255 lines, blank gaps > 127, backward jump > 127 lines
    body = ["def longfunc(n):", "    t = 0", "    for i in range(n):"]
    for k in range(300):
        body.append("        t += %d" % k)
        if k % 50 == 0:
            body.append("        if t > n:\n            break")
    body.append("\n" * 200 + "    t += 1")
    body.append("    u = [" + ", ".join(["t"] * 400) + "]")  # >255 bytes on one line
    body.append("    u = foo(\n" + "\n" * 300 + "        t)")  # call line before arg: negative delta
    body.append("    while t:\n" + "\n" * 150 + "        t -= 1")
    body.append("    return t, u")
    a("\n".join(body))
    a("\n" * (1000 - sum(x.count("\n") + 1 for x in s)))
    a("def at_1000(x):\n    return x")
    a("def huge_gap():\n    a = 1" + "\n" * 70000 + "    b = 2\n    c = (1,\n" + "\n" * 70000 + "    )\n    return a")
    if V >= (3, 10):
        a("def matcher(x):\n    match x:\n        case [a,\n              b]:\n            return a\n        case {'k': v} if v:\n            return v\n        case _:\n            pass")
    if V >= (3, 11):
        a("def tgroup():\n    try:\n        pass\n    except* ValueError:\n        pass")
    if V >= (3, 12):
        a("type Alias[T] = list[T]\ndef gen_fn[T](x: T) -> T:\n    return x")
    return "\n".join(s) + "\n"


def walk(co):
    yield co
    for c in co.co_consts:
        if isinstance(c, types.CodeType):
            yield from walk(c)


def oracle(co):
    """Python-level per-offset line map (None -> -1)."""
    n = len(co.co_code)
    m = {}
    if V < (3, 10):
        starts = list(dis.findlinestarts(co))
        cur = co.co_firstlineno
        k = 0
        for addr in range(0, n, 2):
            while k < len(starts) and starts[k][0] <= addr:
                cur = starts[k][1]
                k += 1
            m[addr] = cur
        return {"findlinestarts": m}
    for s, e, l in co.co_lines():
        for addr in range(s, e, 2):
            m[addr] = -1 if l is None else l
    res = {"co_lines": m}
    if V >= (3, 11):
        res["co_positions"] = {2 * i: (-1 if p[0] is None else p[0])
                               for i, p in enumerate(co.co_positions())}
    return res


def emit(co, name, out):
    table = co.co_lnotab if FMT == 1 else co.co_linetable
    out.write("C %d %d %d %s %s\n" % (FMT, co.co_firstlineno, len(table),
                                      table.hex() or "-",
                                      name.replace(" ", "_")))
    orc = oracle(co)
    for addr in [-2] + list(range(0, len(co.co_code), 2)):
        exp = addr2line(co, addr)
        out.write("A %d %d\n" % (addr, exp))
        if addr < 0:
            continue
        for oname, m in orc.items():
            if m.get(addr, -1) != exp:
                out.write("X %d %s %d\n" % (addr, oname, m.get(addr, -1)))


def main():
    out = sys.stdout
    srcs = [("<tricky>", gen_source())]
    libdir = os.path.dirname(os.__file__)
    for f in sorted(glob.glob(os.path.join(libdir, "*.py")))[:int(os.environ.get("NLIB", "400"))]:
        try:
            with open(f, "rb") as fh:
                srcs.append((f, fh.read()))
        except OSError:
            pass
    ncode = 0
    for fname, src in srcs:
        try:
            top = compile(src, fname, "exec")
        except (SyntaxError, ValueError):
            continue
        for co in walk(top):
            emit(co, "%s:%s" % (os.path.basename(fname), co.co_name), out)
            ncode += 1
    sys.stderr.write("%s: %d code objects\n" % (sys.version.split()[0], ncode))


main()
