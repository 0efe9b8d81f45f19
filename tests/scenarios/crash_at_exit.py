"""gh-110052's shape: a daemon thread crashes during finalization.

The daemon blocks in gtscenario.block_then_crash() with the GIL released; a
Py_AtExit() callback wakes it at the very end of finalization and keeps the
process alive until it is awake and 300 ms more, and the daemon dereferences
NULL: SIGSEGV in that thread.  With the argument "handler", a SIGSEGV handler
of the program's is installed first (sigaction, after start): it writes
"program handler: SIGSEGV" on stderr and returns, and the re-executed fault
kills the process.

Expected on every interpreter: killed by SIGSEGV, stdout "main exits".
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import sys
import threading
import time

import gtscenario

if sys.argv[1:] == ["handler"]:
    gtscenario.install_segv_handler()
print("sigaction:", gtscenario.segv_handler_installed(), "altstack:", gtscenario.altstack_enabled(), flush=True)
threading.Thread(target=gtscenario.block_then_crash, daemon=True).start()
while not gtscenario.blocked():
    time.sleep(0.01)
gtscenario.arm_wake_at_exit()
print("main exits", flush=True)
