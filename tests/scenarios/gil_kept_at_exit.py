"""bpo-36469: "stuck during interpreter exit, attempting to take the GIL".

A native thread unknown to Python waits on a semaphore; an atexit hook
wakes it and releases the GIL until the thread has it.  atexit hooks run inside
Py_FinalizeEx() before the finalizing flag is set, so the thread's
PyGILState_Ensure() succeeds, and the thread then keeps the GIL (blocking
C work without Py_BEGIN_ALLOW_THREADS: gtscenario.start_native_waiter's
keep).  The finalizing thread, back from the hook, waits for the GIL
forever.

Expected on every interpreter: a hang; `giltrace run --exit-timeout`
ends it where the shim sees the Py_FinalizeEx call, --timeout elsewhere.
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import atexit

import gtscenario

gtscenario.start_native_waiter(True)
atexit.register(gtscenario.wake_native_waiter_and_wait, 0)
