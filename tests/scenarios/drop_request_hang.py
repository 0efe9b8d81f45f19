"""gh-96387: finalization hangs in drop_gil() on a GIL drop request left by a
daemon thread that exited in take_gil().

1. A daemon thread puts a gtscenario Spinner in its thread-state dict, then
   loops in pure Python, so it is always waiting for the GIL when main has it.
2. atexit runs gtscenario.spin_holding_gil(0.05) just before Py_FinalizeEx()
   sets the finalizing flag: main holds the GIL in C, the daemon times out in
   take_gil() and sets the drop request, which nothing consumes.
3. Py_FinalizeEx() sets the finalizing flag and clears the daemon's thread
   state; the Spinner's destructor holds the GIL 50 ms in C, the daemon times
   out again and exits at the must-exit check, then the destructor releases
   the GIL.  3.9.x and 3.10.0-3.10.7 leave the drop request set, so
   drop_gil() waits on switch_cond for the dead daemon: the process hangs.
   3.8 has no must-exit check in that loop; 3.10.8+ and 3.11.1+ reset the
   request.

Expected: hang on 3.9 (bound runs with a timeout); elsewhere exit status 0
and stdout "main exits".
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import atexit
import threading

import gtscenario

# Registered first, so it is the last exit function: nothing runs Python
# code (which would honour the drop request) between it and finalization.
atexit.register(gtscenario.spin_holding_gil, 0.05)

started = threading.Event()


def busy():
    gtscenario.spin_at_thread_clear(0.05)
    started.set()
    while True:
        pass


threading.Thread(target=busy, daemon=True).start()
started.wait()
print("main exits", flush=True)
