/*
 * gtscenario: native helpers for giltrace's shutdown scenarios.
 *
 * Each group of functions below puts a thread in front of the GIL at a
 * moment CPython gets wrong or only barely right: after Py_FinalizeEx()
 * freed its thread state (bpo-39877), from a native thread during
 * finalization (bpo-36475), with a freed thread state (use after
 * PyThreadState_DeleteCurrent()), dying while holding the GIL (gh-87135,
 * bpo-36469's symptom), keeping the GIL it took as finalization began
 * (bpo-36469's shape), leaving a stale GIL drop request behind
 * (gh-96387), and crashing during finalization (gh-110052's shape), with
 * or without a SIGSEGV handler of the program's, and a native thread a
 * subinterpreter starts that calls back through PyGILState_Ensure()
 * (gh-59956: it lands in the main interpreter).
 * The scripts next to this file drive them; each one says what it
 * reproduces.
 *
 * Compiles unchanged against CPython 3.8 ... 3.13 with
 * -Wall -Wextra -Werror.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- helpers ---------------------------------------------------------- */

static PyInterpreterState *current_interp(void)
{
#if PY_VERSION_HEX >= 0x03090000
	return PyThreadState_GetInterpreter(PyThreadState_Get());
#else
	return PyThreadState_Get()->interp;
#endif
}

static int interpreter_is_finalizing(void)
{
#if PY_VERSION_HEX >= 0x030D0000
	return Py_IsFinalizing();
#else
	return _Py_IsFinalizing();
#endif
}

static int debug_enabled(void)
{
	const char *v = getenv("GTSCENARIO_DEBUG");

	return v && *v && *v != '0';
}

/* sem_wait() that a signal (SIGCHLD, a profiler's timer) cannot cut short. */
static void sem_wait_retry(sem_t *sem)
{
	while (sem_wait(sem) < 0 && errno == EINTR)
		;
}

static double monotonic_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec + now.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds)
{
	struct timespec left;

	left.tv_sec = (time_t)seconds;
	left.tv_nsec = (long)((seconds - left.tv_sec) * 1e9);
	while (nanosleep(&left, &left) < 0 && errno == EINTR)
		;
}

/*
 * Wait (without the GIL) until another thread sets *flag, at most `cap`
 * seconds: a handshake, so that a scenario's fixed window starts when the
 * other thread is really on its way and not when it was told to go, which
 * on a loaded machine can be much later.
 */
static void wait_for_flag(const int *flag, double cap)
{
	double end = monotonic_seconds() + cap;

	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE) && monotonic_seconds() < end)
		sleep_seconds(0.001);
}

/* Burn CPU without returning to the eval loop: GIL drop requests go unseen. */
static void spin(double seconds)
{
	double end = monotonic_seconds() + seconds;

	while (monotonic_seconds() < end)
		;
}

static int start_thread(pthread_t *tid, void *(*fn)(void *), void *arg, int detached)
{
	pthread_attr_t attr;
	int err;

	pthread_attr_init(&attr);
	if (detached)
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	err = pthread_create(tid, &attr, fn, arg);
	pthread_attr_destroy(&attr);
	if (err) {
		errno = err;
		PyErr_SetFromErrno(PyExc_OSError);
		return -1;
	}
	return 0;
}

/*
 * ---- (a) restore_after_finalize: bpo-39877 -----------------------------
 *
 * A daemon thread releases the GIL and blocks; a Py_AtExit() callback,
 * which runs at the very end of Py_FinalizeEx() when the daemon's thread
 * state is already freed, wakes it and keeps the process alive 300 ms
 * from the moment the daemon is awake, so that its PyEval_RestoreThread()
 * really runs on the stale thread state.
 */

static sem_t restore_sem;
static int restore_blocked, restore_woken;

static PyObject *block_then_restore(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	Py_BEGIN_ALLOW_THREADS
	__atomic_store_n(&restore_blocked, 1, __ATOMIC_RELEASE);
	sem_wait_retry(&restore_sem);
	__atomic_store_n(&restore_woken, 1, __ATOMIC_RELEASE);
	/* Woken after finalization: the thread never gets past this. */
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

static PyObject *blocked(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	return PyBool_FromLong(__atomic_load_n(&restore_blocked, __ATOMIC_ACQUIRE));
}

static void wake_at_exit(void)
{
	sem_post(&restore_sem);
	wait_for_flag(&restore_woken, 10.0);
	sleep_seconds(0.3);
}

static PyObject *arm_wake_at_exit(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	if (Py_AtExit(wake_at_exit) < 0) {
		PyErr_SetString(PyExc_RuntimeError, "Py_AtExit: no room left");
		return NULL;
	}
	Py_RETURN_NONE;
}

/*
 * ---- (b) gilstate_after_finalize: bpo-36475 ----------------------------
 *
 * A native thread, unknown to Python, sleeps on a semaphore.  Woken while
 * Py_FinalizeEx() tears modules down, it calls PyGILState_Ensure() without
 * looking at Py_IsFinalizing() first, as careless extensions do.  The
 * waker releases the GIL for a while so that the thread can get that far:
 * from the moment the thread is awake, or with `keep`, until it has the
 * GIL (then the waker's wish for it back hangs the exit, as it should).
 */

static sem_t waiter_sem;
static int waiter_woken, waiter_has_gil;

/*
 * With `keep` (bpo-36469, "stuck during interpreter exit, attempting to
 * take the GIL"), the thread keeps the GIL once it has it: blocking C
 * work without Py_BEGIN_ALLOW_THREADS.  Woken from an atexit hook, it
 * takes the GIL after Py_FinalizeEx() began but before the finalizing
 * flag is set, so no must-exit check stops it, and the finalizing thread
 * waits for the GIL forever.  It sleeps in nanosleep, not pause(): a
 * thread in pause() is what 3.13.8+ calls parked.
 */
static void *native_waiter(void *arg)
{
	PyGILState_STATE state;

	sem_wait_retry(&waiter_sem);
	__atomic_store_n(&waiter_woken, 1, __ATOMIC_RELEASE);
	state = PyGILState_Ensure();	/* no Py_IsFinalizing() check, on purpose */
	__atomic_store_n(&waiter_has_gil, 1, __ATOMIC_RELEASE);
	if (debug_enabled())
		fprintf(stderr, "gtscenario: native waiter got the GIL\n");
	while (arg)
		sleep_seconds(1.0);
	PyGILState_Release(state);
	return NULL;
}

static int waiter_keeps_gil;

static PyObject *start_native_waiter(PyObject *Py_UNUSED(self), PyObject *args)
{
	pthread_t tid;
	int keep = 0;

	if (!PyArg_ParseTuple(args, "|p", &keep))
		return NULL;
	waiter_keeps_gil = keep;
	if (start_thread(&tid, native_waiter, keep ? (void *)1 : NULL, 1) < 0)
		return NULL;
	Py_RETURN_NONE;
}

static PyObject *wake_native_waiter_and_wait(PyObject *Py_UNUSED(self), PyObject *args)
{
	double seconds;

	if (!PyArg_ParseTuple(args, "d", &seconds))
		return NULL;
	if (debug_enabled())
		fprintf(stderr, "gtscenario: waking the native waiter, finalizing=%d\n",
			interpreter_is_finalizing());
	sem_post(&waiter_sem);
	Py_BEGIN_ALLOW_THREADS
	if (waiter_keeps_gil) {
		wait_for_flag(&waiter_has_gil, 10.0);
	} else {
		wait_for_flag(&waiter_woken, 10.0);
		sleep_seconds(seconds);
	}
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

/*
 * The same unsafe exit from a Python thread (named_thread_exit.py): a
 * threading.Thread's Python code calls exit_thread_holding_gil(), which
 * ends the thread with pthread_exit() while it holds the GIL, its Python
 * frames alive above this C function.  The main thread, without the GIL,
 * waits for the thread to be gone (its /proc task entry), writes "exited"
 * and calls _exit(0): it never asks for the GIL again.
 */
static pid_t exiting_tid;
static int main_released;

static PyObject *exit_thread_holding_gil(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	/* first let the main thread give the GIL up for good, else it may
	 * still want it back (Thread.start() waits for this thread) */
	PyThreadState *ts = PyEval_SaveThread();

	while (!__atomic_load_n(&main_released, __ATOMIC_ACQUIRE))
		sleep_seconds(0.01);
	PyEval_RestoreThread(ts);
	__atomic_store_n(&exiting_tid, (pid_t)gettid(), __ATOMIC_RELEASE);
	pthread_exit(NULL);
}

static PyObject *wait_for_thread_exit_then_exit(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	static const char exited[] = "exited\n";
	char task[64];
	pid_t tid;
	int i;

	(void)PyEval_SaveThread();	/* never restored: the thread takes the GIL along */
	__atomic_store_n(&main_released, 1, __ATOMIC_RELEASE);
	while (!(tid = __atomic_load_n(&exiting_tid, __ATOMIC_ACQUIRE)))
		sleep_seconds(0.01);
	snprintf(task, sizeof(task), "/proc/self/task/%d", (int)tid);
	for (i = 0; i < 1000 && access(task, F_OK) == 0; i++)
		sleep_seconds(0.01);
	if (write(STDOUT_FILENO, exited, sizeof(exited) - 1) != sizeof(exited) - 1)
		_exit(1);
	_exit(0);
}

/*
 * ---- (c) use_after_delete -------------------------------------------
 *
 * A native thread deletes its own thread state, then hands the freed
 * pointer to PyEval_RestoreThread() while nothing is finalizing.  Any
 * outcome is possible; the alarm keeps the process from hanging forever.
 */

#define WATCHDOG_SECONDS 10

static void *use_after_delete_thread(void *arg)
{
	PyThreadState *ts = PyThreadState_New(arg);

	PyEval_RestoreThread(ts);
	PyThreadState_Clear(ts);
	PyThreadState_DeleteCurrent();	/* frees ts and releases the GIL */
	usleep(10 * 1000);
	PyEval_RestoreThread(ts);	/* use after free, on purpose */
	PyEval_SaveThread();
	return NULL;
}

static PyObject *use_after_delete(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	PyInterpreterState *interp = current_interp();
	pthread_t tid;

	alarm(WATCHDOG_SECONDS);	/* SIGALRM kills us if the GIL is wedged */
	if (start_thread(&tid, use_after_delete_thread, interp, 0) < 0)
		return NULL;
	Py_BEGIN_ALLOW_THREADS
	pthread_join(tid, NULL);
	Py_END_ALLOW_THREADS
	alarm(0);
	Py_RETURN_NONE;
}

/*
 * ---- (d) exit_holding_gil: gh-87135 -----------------------------------
 *
 * A native thread takes the GIL and ends with pthread_exit() without
 * releasing it, the unwinding that gh-87135 calls unsafe in
 * PyThread_exit_thread().  Whoever asks for the GIL next waits forever
 * (the "stuck attempting to take the GIL" of bpo-36469), so the caller
 * joins the thread, reports, and leaves with _exit() instead.
 */

static void *exit_holding_gil_thread(void *arg)
{
	PyThreadState *ts = PyThreadState_New(arg);

	PyEval_RestoreThread(ts);
	pthread_exit(NULL);
}

static PyObject *exit_holding_gil(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	static const char joined[] = "joined\n";
	PyInterpreterState *interp = current_interp();
	PyThreadState *saved;
	pthread_t tid;

	if (start_thread(&tid, exit_holding_gil_thread, interp, 0) < 0)
		return NULL;
	saved = PyEval_SaveThread();
	pthread_join(tid, NULL);
	(void)saved;		/* never restored: the GIL belongs to a dead thread */
	if (write(STDOUT_FILENO, joined, sizeof(joined) - 1) != sizeof(joined) - 1)
		_exit(1);
	_exit(0);
}

/*
 * ---- (e) drop_request_hang: gh-96387 ----------------------------------
 *
 * spin_holding_gil(), run by atexit just before finalization starts,
 * holds the GIL long enough for a waiting daemon thread to time out in
 * take_gil() and set the GIL drop request.  spin_at_thread_clear() leaves
 * a Spinner in the daemon's thread-state dict; Py_FinalizeEx() clears
 * that dict right after it set the finalizing flag, and the Spinner's
 * destructor holds the GIL again long enough for the daemon to time out
 * once more and exit at the must-exit check, then releases the GIL.
 * CPython 3.9 and 3.10.0-3.10.7 leave the drop request set when the daemon
 * exits, so that release waits on switch_cond for a thread that is gone.
 */

static PyObject *spin_holding_gil(PyObject *Py_UNUSED(self), PyObject *args)
{
	double seconds;

	if (!PyArg_ParseTuple(args, "d", &seconds))
		return NULL;
	spin(seconds);
	Py_RETURN_NONE;
}

typedef struct {
	PyObject_HEAD
	double seconds;
} SpinnerObject;

static void spinner_dealloc(PyObject *op)
{
	SpinnerObject *self = (SpinnerObject *)op;

	spin(self->seconds);
	Py_BEGIN_ALLOW_THREADS	/* gh-96387: hangs here */
	sleep_seconds(0.001);
	Py_END_ALLOW_THREADS
	Py_TYPE(op)->tp_free(op);
}

static PyTypeObject SpinnerType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "gtscenario.Spinner",
	.tp_basicsize = sizeof(SpinnerObject),
	.tp_dealloc = spinner_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "Holds the GIL for a while when destroyed, then releases it briefly.",
};

static PyObject *spin_at_thread_clear(PyObject *Py_UNUSED(self), PyObject *args)
{
	SpinnerObject *spinner;
	PyObject *dict;
	double seconds;
	int err;

	if (!PyArg_ParseTuple(args, "d", &seconds))
		return NULL;
	dict = PyThreadState_GetDict();		/* borrowed */
	if (!dict) {
		PyErr_SetString(PyExc_RuntimeError, "no thread-state dict");
		return NULL;
	}
	spinner = PyObject_New(SpinnerObject, &SpinnerType);
	if (!spinner)
		return NULL;
	spinner->seconds = seconds;
	err = PyDict_SetItemString(dict, "gtscenario.spinner", (PyObject *)spinner);
	Py_DECREF(spinner);
	if (err < 0)
		return NULL;
	Py_RETURN_NONE;
}

/*
 * ---- (f) crash_at_exit: gh-110052's shape ------------------------------
 *
 * block_then_crash() is block_then_restore() that, once woken by the
 * Py_AtExit() callback at the end of Py_FinalizeEx(), dereferences NULL
 * without the GIL: a daemon thread crashing during finalization.
 * install_segv_handler() installs, with sigaction() after the interpreter
 * started (after giltrace's shim), a SIGSEGV handler that says so on
 * stderr and returns; SA_RESETHAND makes the fault, re-executed, kill the
 * process.  segv_handler_installed() and altstack_enabled() ask the
 * kernel's interfaces what a program sees.
 */

static PyObject *block_then_crash(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	Py_BEGIN_ALLOW_THREADS
	__atomic_store_n(&restore_blocked, 1, __ATOMIC_RELEASE);
	sem_wait_retry(&restore_sem);
	__atomic_store_n(&restore_woken, 1, __ATOMIC_RELEASE);
	*(volatile int *)NULL = 1;	/* SIGSEGV, SEGV_MAPERR at address 0 */
	Py_END_ALLOW_THREADS
	Py_RETURN_NONE;
}

static void program_segv_handler(int sig, siginfo_t *info, void *context)
{
	static const char said[] = "program handler: SIGSEGV\n";

	(void)sig;
	(void)info;
	(void)context;
	if (write(STDERR_FILENO, said, sizeof(said) - 1) < 0)
		_exit(3);
}

static PyObject *install_segv_handler(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	struct sigaction act;

	memset(&act, 0, sizeof act);
	act.sa_sigaction = program_segv_handler;
	sigemptyset(&act.sa_mask);
	act.sa_flags = SA_SIGINFO | SA_RESETHAND;
	if (sigaction(SIGSEGV, &act, NULL) < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	Py_RETURN_NONE;
}

static PyObject *segv_handler_installed(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	struct sigaction old;

	if (sigaction(SIGSEGV, NULL, &old) < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	if (old.sa_handler == SIG_DFL)
		return PyUnicode_FromString("default");
	if (old.sa_handler == SIG_IGN)
		return PyUnicode_FromString("ignored");
	return PyUnicode_FromString((old.sa_flags & SA_SIGINFO) && old.sa_sigaction == program_segv_handler
	                            ? "program" : "other");
}

static PyObject *altstack_enabled(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	stack_t ss;

	if (sigaltstack(NULL, &ss) < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	return PyBool_FromLong(!(ss.ss_flags & SS_DISABLE));
}

/*
 * ---- (g) gilstate_thread: gh-59956 ------------------------------------
 *
 * PyGILState_Ensure() on a thread without a thread state makes one in the
 * main interpreter, whoever started the thread.  A subinterpreter's code
 * starts gilstate_thread() with pthread_create() (through ctypes, which
 * loads where this single-phase module cannot: in a subinterpreter with
 * its own GIL), and the main interpreter reads which interpreter the
 * thread's Ensure gave it.  Nothing of the subinterpreter's is touched, so
 * the program itself runs fine: only the interpreter is wrong.
 */

static long long gilstate_thread_interp = -1;

static void *gilstate_thread(void *Py_UNUSED(arg))
{
	PyGILState_STATE previous = PyGILState_Ensure();

	gilstate_thread_interp = PyInterpreterState_GetID(current_interp());
	PyGILState_Release(previous);
	return NULL;
}

static PyObject *gilstate_thread_address(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	return PyLong_FromVoidPtr((void *)gilstate_thread);
}

static PyObject *gilstate_thread_result(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(args))
{
	return PyLong_FromLongLong(gilstate_thread_interp);
}

/* ---- module ------------------------------------------------------------ */

static PyMethodDef gtscenario_methods[] = {
	{ "block_then_restore", block_then_restore, METH_NOARGS,
	  "Release the GIL, block until woken at exit, then take the GIL back." },
	{ "blocked", blocked, METH_NOARGS,
	  "True once block_then_restore() is blocked." },
	{ "arm_wake_at_exit", arm_wake_at_exit, METH_NOARGS,
	  "Wake block_then_restore() from a Py_AtExit() callback; 0.3 s once it is awake." },
	{ "start_native_waiter", start_native_waiter, METH_VARARGS,
	  "start_native_waiter(keep=False): a native thread that calls PyGILState_Ensure()\n"
	  "once woken, and with keep never releases the GIL." },
	{ "wake_native_waiter_and_wait", wake_native_waiter_and_wait, METH_VARARGS,
	  "wake_native_waiter_and_wait(seconds): wake it, then, without the GIL, wait for it to\n"
	  "be awake and sleep `seconds` (with keep: wait until it has the GIL)." },
	{ "exit_thread_holding_gil", exit_thread_holding_gil, METH_NOARGS,
	  "exit_thread_holding_gil(): end the calling thread with pthread_exit(), GIL held." },
	{ "wait_for_thread_exit_then_exit", wait_for_thread_exit_then_exit, METH_NOARGS,
	  "wait_for_thread_exit_then_exit(): release the GIL for good, wait for that thread, _exit(0)." },
	{ "use_after_delete", use_after_delete, METH_NOARGS,
	  "Run a native thread that restores its thread state after deleting it." },
	{ "exit_holding_gil", exit_holding_gil, METH_NOARGS,
	  "Let a native thread exit holding the GIL; print 'joined' and _exit(0)." },
	{ "spin_holding_gil", spin_holding_gil, METH_VARARGS,
	  "spin_holding_gil(seconds): busy-wait holding the GIL, no eval loop." },
	{ "spin_at_thread_clear", spin_at_thread_clear, METH_VARARGS,
	  "spin_at_thread_clear(seconds): spin when this thread's state is cleared." },
	{ "block_then_crash", block_then_crash, METH_NOARGS,
	  "Release the GIL, block until woken at exit, then dereference NULL." },
	{ "install_segv_handler", install_segv_handler, METH_NOARGS,
	  "Install a SIGSEGV handler (sigaction, SA_RESETHAND) that writes to stderr." },
	{ "segv_handler_installed", segv_handler_installed, METH_NOARGS,
	  "What sigaction() says of SIGSEGV: default, ignored, program, other." },
	{ "altstack_enabled", altstack_enabled, METH_NOARGS,
	  "Whether sigaltstack() says this thread has an alternate signal stack." },
	{ "gilstate_thread_address", gilstate_thread_address, METH_NOARGS,
	  "The address of a thread start routine that calls PyGILState_Ensure()." },
	{ "gilstate_thread_result", gilstate_thread_result, METH_NOARGS,
	  "The id of the interpreter that routine's Ensure gave it, -1 before." },
	{ NULL, NULL, 0, NULL }
};

static struct PyModuleDef gtscenario_module = {
	PyModuleDef_HEAD_INIT,
	.m_name = "gtscenario",
	.m_doc = "Native helpers for giltrace's shutdown scenarios.",
	.m_size = -1,
	.m_methods = gtscenario_methods,
};

PyMODINIT_FUNC PyInit_gtscenario(void)
{
	if (sem_init(&restore_sem, 0, 0) < 0 || sem_init(&waiter_sem, 0, 0) < 0)
		return PyErr_SetFromErrno(PyExc_OSError);
	if (PyType_Ready(&SpinnerType) < 0)
		return NULL;
	return PyModule_Create(&gtscenario_module);
}
