/*
 * embed_reinit: an embedder keeps a PyThreadState across Py_FinalizeEx()
 * and Py_Initialize() and hands the stale pointer to
 * PyEval_RestoreThread() in the new interpreter.  Py_FinalizeEx() freed
 * it; this is bpo-39877's dangling thread state reached through
 * re-initialization instead of a daemon thread.
 *
 *	embed_reinit		use the stale thread state, then finish
 *	embed_reinit clean	the same sequence without the stale use
 *	embed_reinit slow	clean, and the second interpreter runs 2 s
 *				(a process whose first finalization ended long
 *				before it exits: run --exit-timeout leaves it be)
 *
 * Prints "done" on success.  An alarm kills the process with SIGALRM if
 * the stale GIL hand-off ever wedges, so that it cannot hang forever.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define WATCHDOG_SECONDS 10

static PyInterpreterState *interp_of(PyThreadState *ts)
{
#if PY_VERSION_HEX >= 0x03090000
	return PyThreadState_GetInterpreter(ts);
#else
	return ts->interp;
#endif
}

int main(int argc, char **argv)
{
	int slow = argc > 1 && strcmp(argv[1], "slow") == 0;
	int clean = slow || (argc > 1 && strcmp(argv[1], "clean") == 0);
	PyThreadState *main_ts, *kept, *saved;

	alarm(WATCHDOG_SECONDS);

	Py_Initialize();
	main_ts = PyThreadState_Get();
	/* A second thread state; Py_FinalizeEx() frees it. */
	kept = PyThreadState_New(interp_of(main_ts));
	if (!kept) {
		fprintf(stderr, "embed_reinit: PyThreadState_New failed\n");
		return 1;
	}
	if (Py_FinalizeEx() < 0)
		fprintf(stderr, "embed_reinit: first Py_FinalizeEx failed\n");

	Py_Initialize();
	if (slow)
		PyRun_SimpleString("import time; time.sleep(2)");
	saved = PyEval_SaveThread();
	if (!clean) {
		PyEval_RestoreThread(kept);	/* stale: freed memory */
		PyEval_SaveThread();
	}
	PyEval_RestoreThread(saved);
	if (Py_FinalizeEx() < 0)
		fprintf(stderr, "embed_reinit: second Py_FinalizeEx failed\n");

	printf("done\n");
	return 0;
}
