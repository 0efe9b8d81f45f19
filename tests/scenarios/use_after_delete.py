"""A native thread hands PyEval_RestoreThread() the thread state that
PyThreadState_DeleteCurrent() just freed, while nothing is finalizing: the
dangling-thread-state use behind bpo-39877, without any shutdown race.

Any outcome is acceptable (the debug build fills freed memory with 0xDD);
a 10 s alarm in gtscenario ends the process with SIGALRM rather than let a
wedged GIL hang it forever.  Prints "after" if the call returns.
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import gtscenario

gtscenario.use_after_delete()
print("after")
