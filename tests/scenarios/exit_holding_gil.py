"""gh-87135: a thread ends (pthread_exit) while it holds the GIL, as
PyThread_exit_thread() can make a thread do from inside CPython.

gtscenario.exit_holding_gil() joins that thread with its own thread state
saved, writes "joined" to fd 1 and calls _exit(0): it never asks for the
GIL again, since that would wait forever.
Expected on every interpreter: exit status 0, stdout "joined".
Needs gtscenario on PYTHONPATH (tests/scenario_build.py builds it).
"""
import gtscenario

gtscenario.exit_holding_gil()
