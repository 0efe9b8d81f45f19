"""bpo-39877: a daemon thread calls PyEval_RestoreThread() after Py_FinalizeEx()
freed its thread state.

The daemon blocks in gtscenario.block_then_restore() with the GIL released;
a Py_AtExit() callback wakes it at the very end of finalization and keeps
the process alive until it is awake and 300 ms more, so the daemon re-takes
the GIL with a dangling thread state.  3.9+ end the daemon in take_gil()
(pthread_exit, the bpo-39877 fix); 3.8 leaves it blocked in take_gil() and
exits around it.

Expected on every interpreter: exit status 0, stdout "main exits".
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import threading
import time

import gtscenario

threading.Thread(target=gtscenario.block_then_restore, daemon=True).start()
while not gtscenario.blocked():
    time.sleep(0.01)
gtscenario.arm_wake_at_exit()
print("main exits")
