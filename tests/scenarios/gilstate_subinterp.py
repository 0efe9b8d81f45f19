"""gh-59956: a native thread that a subinterpreter starts calls
PyGILState_Ensure() and lands in the main interpreter.

    gilstate_subinterp.py legacy   a subinterpreter sharing the main GIL
    gilstate_subinterp.py own      one with its own GIL (3.13: ctypes loads there)
    gilstate_subinterp.py main     the same thread started from the main
                                   interpreter: correct, a clean case
    gilstate_subinterp.py thread   a threading.Thread of a subinterpreter
                                   (sharing the GIL) calls back through a ctypes
                                   callback (PyGILState_Ensure): its thread
                                   state is bound, so the Ensure stays in the
                                   subinterpreter; a clean case

The subinterpreter starts gtscenario's gilstate_thread() through ctypes
(PyDLL, so that pthread_create() runs with the subinterpreter's GIL held,
as a C extension's call would) and joins it without the GIL.  Prints the
id of the interpreter the thread's Ensure gave it: 0, the main one, in
every mode; the program never notices.  Needs gtscenario on PYTHONPATH.
"""
import sys

import gtscenario

MODE = sys.argv[1] if len(sys.argv) > 1 else "legacy"
START = f"""
import ctypes
tid = ctypes.c_ulong()
if ctypes.PyDLL(None).pthread_create(ctypes.byref(tid), None,
                                     ctypes.c_void_p({gtscenario.gilstate_thread_address()}), None):
    raise OSError("pthread_create failed")
ctypes.CDLL(None).pthread_join(tid, None)
"""

CALLBACK = """
import ctypes, threading
seen = []
callback = ctypes.CFUNCTYPE(None)(lambda: seen.append(1))
thread = threading.Thread(target=callback)
thread.start()
thread.join()
assert seen == [1]
"""

if MODE == "main":
    exec(START)
else:
    try:
        import _interpreters as I                      # 3.13
        make = lambda: I.create("isolated" if MODE == "own" else "legacy")
    except ImportError:
        import _xxsubinterpreters as I                 # 3.8 .. 3.12

        def make():
            if MODE == "own":
                return I.create(isolated=True)         # its own GIL: 3.12 only
            try:
                return I.create(isolated=False)        # 3.11, 3.12: threads allowed
            except TypeError:
                return I.create()                      # 3.8 .. 3.10
    interp = make()
    I.run_string(interp, CALLBACK if MODE == "thread" else START)
    I.destroy(interp)
print("interpreter", gtscenario.gilstate_thread_result())
