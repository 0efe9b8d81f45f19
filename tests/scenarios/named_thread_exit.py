"""gh-87135 from a Python thread: a threading.Thread with a name of its own
ends, from its Python code, with pthread_exit() while it holds the GIL.

The finding must read in Python terms: the thread's name (not ASCII, longer
than the 15 bytes pthread_setname_np keeps), the line of poll() that called
into C, and the threading frames below it.  gtscenario's
wait_for_thread_exit_then_exit() releases the GIL for good, waits until the
thread is gone, writes "exited" to fd 1 and calls _exit(0).  With the
argument "rename", the thread renames itself first (RENAMED): the name
after the rename is the one to show.
Expected on every interpreter with a GIL: exit status 0, stdout "exited".
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import sys
import threading

import gtscenario

THREAD_NAME = "poller-\u00e9-7 of the named_thread_exit scenario"
RENAMED = "renamed-\u20ac-poller"


def poll():
    gtscenario.exit_thread_holding_gil()  # the call of the finding


def serve():
    if sys.argv[1:] == ["rename"]:
        threading.current_thread().name = RENAMED
    poll()


threading.Thread(target=serve, name=THREAD_NAME).start()
gtscenario.wait_for_thread_exit_then_exit()
