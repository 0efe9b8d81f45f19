"""gh-87135: a thread ends with pthread_exit() while it holds the GIL, the
unsafe thread exit that PyThread_exit_thread() performs inside CPython.
Anyone asking for the GIL afterwards waits forever (the symptom of bpo-36469,
"stuck during interpreter exit, attempting to take the GIL").

gtscenario.exit_holding_gil() joins that thread with its own thread state
saved, writes "joined" to fd 1 and calls _exit(0): it never asks for the
GIL again.
Expected on every interpreter: exit status 0, stdout "joined".
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import gtscenario

gtscenario.exit_holding_gil()
