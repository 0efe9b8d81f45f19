"""bpo-36475: a native thread calls PyGILState_Ensure() while Py_FinalizeEx()
is tearing modules down, without checking Py_IsFinalizing() first.

The thread is started by gtscenario.start_native_waiter() and sleeps on a
semaphore.  The trigger is the __del__ of an object held only by a __main__
global: it runs when finalization clears __main__ (after the finalizing flag
is set), wakes the thread and releases the GIL until it is awake and 300 ms
more.  The object keeps
its own references to what __del__ needs, and its name starts with an
underscore so that module clearing drops it before the other globals.

GTSCENARIO_DEBUG=1 prints to stderr whether the interpreter was finalizing
when __del__ ran (sys.is_finalizing() and the C-level flag).
Expected: no hang, exit status 0, stdout "main exits".
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import os
import sys

import gtscenario


class WakeOnTeardown:
    def __init__(self):
        self.wake = gtscenario.wake_native_waiter_and_wait
        self.is_finalizing = sys.is_finalizing
        self.stderr = sys.stderr
        self.debug = os.environ.get("GTSCENARIO_DEBUG", "0") not in ("", "0")

    def __del__(self):
        if self.debug:
            print("gilstate_after_finalize: __del__, sys.is_finalizing() =",
                  self.is_finalizing(), file=self.stderr, flush=True)
        self.wake(0.3)


gtscenario.start_native_waiter()
_trigger = WakeOnTeardown()
print("main exits")
