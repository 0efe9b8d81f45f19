"""Build the native parts of the scenarios in tests/scenarios/ for one interpreter.

build_extension(python, outdir) compiles tests/scenarios/gtscenario.c into
the extension module ``gtscenario`` for that interpreter and returns the
directory to put on PYTHONPATH; build_embed(python, outdir) links
tests/scenarios/embed_reinit.c against that interpreter's libpython and
returns the executable.  Both use the python3.X-config that sits next to
the interpreter (never the one on PATH, which may be a pyenv shim), cache
their output per interpreter under outdir/<hash of the interpreter path>/,
and raise RuntimeError with the compiler's stderr when a build fails.

Pure standard library: pytest imports it under /usr/bin/python3.
"""
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SCENARIOS = os.path.join(HERE, "scenarios")
EXTENSION_SOURCE = os.path.join(SCENARIOS, "gtscenario.c")
PEP788_SOURCE = os.path.join(SCENARIOS, "gtpep788.c")
EMBED_SOURCE = os.path.join(SCENARIOS, "embed_reinit.c")

CC = os.environ.get("CC", "gcc")
WARNINGS = ["-g", "-O0", "-Wall", "-Wextra", "-Werror"]

_QUERY = """\
import json, sys, sysconfig
v = sysconfig.get_config_var
print(json.dumps({
    "version": "%d.%d" % sys.version_info[:2],
    "abiflags": getattr(sys, "abiflags", ""),
    "ext_suffix": v("EXT_SUFFIX"),
    "libdir": v("LIBDIR"),
    "multiarch": v("MULTIARCH") or "",
    "build": sys.version,
}))
"""


def _interpreter_info(python):
    try:
        proc = subprocess.run([python, "-c", _QUERY], capture_output=True,
                              text=True, timeout=60)
    except OSError as exc:
        raise RuntimeError(f"cannot run interpreter {python}: {exc}") from exc
    if proc.returncode != 0:
        raise RuntimeError(f"{python} failed to report its configuration:\n{proc.stderr}")
    return json.loads(proc.stdout)


def _debian_package(python, info):
    """The Debian package that ships the headers and config of a /usr/bin python."""
    if not os.path.realpath(python).startswith("/usr/bin/"):
        return None
    suffix = "dbg" if "d" in info["abiflags"] else "dev"
    return f"python{info['version']}-{suffix}"


def _missing(python, info, what):
    package = _debian_package(python, info)
    hint = f": install the Debian package {package} (apt-get install {package})" if package else ""
    return RuntimeError(f"{what} for {python} not found{hint}")


def _config_script(python, info):
    """The python3.X-config belonging to this very interpreter."""
    bindir = os.path.dirname(os.path.abspath(python))
    candidates = [
        os.path.abspath(python) + "-config",
        os.path.join(bindir, f"python{info['version']}{info['abiflags']}-config"),
    ]
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    raise _missing(python, info, "python-config (tried " + ", ".join(candidates) + ")")


def _config(script, *args):
    proc = subprocess.run([script, *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{script} {' '.join(args)} failed:\n{proc.stderr}")
    return shlex.split(proc.stdout)


def _check_headers(python, info, flags):
    dirs = [f[2:] for f in flags if f.startswith("-I")]
    if not any(os.path.isfile(os.path.join(d, "Python.h")) for d in dirs):
        raise _missing(python, info, "Python.h (looked in " + ", ".join(dirs or ["nowhere"]) + ")")


def _cache_dir(python, info, outdir):
    # Keyed on the path and the exact build, so a rebuilt pyenv version at
    # the same path does not pick up a module built for its predecessor.
    ident = os.path.abspath(python) + "\0" + info["build"]
    key = hashlib.sha256(ident.encode()).hexdigest()[:16]
    path = os.path.join(outdir, key)
    os.makedirs(path, exist_ok=True)
    return path


def _fresh(target, source):
    return os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(source)


def _compile(cmd_before_output, target, cmd_after_output, hint=None):
    """Run the compiler into a temporary file, then rename it into place.

    The rename keeps concurrent builders (pytest-xdist workers) from ever
    seeing a half-written module or executable.
    """
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(target) + ".",
                               dir=os.path.dirname(target))
    os.close(fd)
    cmd = [*cmd_before_output, "-o", tmp, *cmd_after_output]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            msg = f"build failed ({shlex.join(cmd)}):\n{proc.stderr}{proc.stdout}"
            if hint and "cannot find -lpython" in proc.stderr:
                msg += f"\n{hint}"
            raise RuntimeError(msg)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def build_extension(python, outdir, source=EXTENSION_SOURCE):
    """Build gtscenario (or the module of `source`, named after it) for
    `python`; return the directory that contains it."""
    info = _interpreter_info(python)
    script = _config_script(python, info)
    includes = _config(script, "--includes")
    _check_headers(python, info, includes)
    if not info["ext_suffix"]:
        raise RuntimeError(f"{python} reports no EXT_SUFFIX")
    moddir = _cache_dir(python, info, outdir)
    name = os.path.splitext(os.path.basename(source))[0]
    target = os.path.join(moddir, name + info["ext_suffix"])
    if not _fresh(target, source):
        _compile([CC, "-shared", "-fPIC", *WARNINGS, *includes, source],
                 target, ["-lpthread"])
    return moddir


def _system_libdir(libdir, info):
    system = {"/lib", "/usr/lib", "/lib64", "/usr/lib64"}
    if info["multiarch"]:
        system |= {f"/lib/{info['multiarch']}", f"/usr/lib/{info['multiarch']}"}
    return os.path.normpath(libdir) in system


def build_embed(python, outdir):
    """Build embed_reinit against `python`'s libpython; return the executable."""
    info = _interpreter_info(python)
    script = _config_script(python, info)
    cflags = _config(script, "--cflags")
    _check_headers(python, info, cflags)
    ldflags = _config(script, "--ldflags", "--embed")
    libdir = info["libdir"]
    if libdir and not _system_libdir(libdir, info):
        # pyenv's shared builds: find libpython without LD_LIBRARY_PATH.
        rpath = f"-Wl,-rpath,{libdir}"
        if rpath not in ldflags:
            ldflags.append(rpath)
    target = os.path.join(_cache_dir(python, info, outdir), "embed_reinit")
    if not _fresh(target, EMBED_SOURCE):
        package = _debian_package(python, info)
        hint = f"install the Debian package {package} for libpython{info['version']}{info['abiflags']}.so" \
            if package else None
        # The interpreter's --cflags carry -O2/-O3 and -DNDEBUG; the -O0 after them wins.
        _compile([CC, *cflags, *WARNINGS, EMBED_SOURCE], target, [*ldflags, "-lpthread"], hint)
    return target


if __name__ == "__main__":
    # Manual use: python3 tests/scenario_build.py PYTHON OUTDIR
    if len(sys.argv) != 3:
        sys.exit("usage: scenario_build.py PYTHON OUTDIR")
    print(build_extension(sys.argv[1], sys.argv[2]))
    print(build_embed(sys.argv[1], sys.argv[2]))
