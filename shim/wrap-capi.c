/*
 * wrap-capi.c: wrappers of CPython's C-API entry points.
 *
 * Design note.  The pthread layer shows what the GIL did; these wrappers
 * show which C-API call made it do so, with which thread state, and from
 * where (the caller's return address).  Each wrapper records a CALL event
 * before the real function runs (a call that crashes is still in the
 * trace), a RETURN event where the result teaches something (a new thread
 * state, a status), and calls the interpreter's own definition.
 * Calls that may take the GIL (PyEval_RestoreThread, PyEval_AcquireThread,
 * PyEval_AcquireLock, PyGILState_Ensure) record their RETURN only while the
 * runtime is finalizing: there it tells that the thread went on past
 * CPython's must-exit checks; elsewhere it would only cost time.
 *
 * The wrappers are reached in two ways: as preloaded definitions, where the
 * dynamic linker binds a caller to them (shared libpython, embedding
 * programs), and through GOT slots that got-patch.c rewrites (extension
 * modules of a static interpreter).  The types are opaque here: the shim is
 * built once for every CPython version, without its headers.
 *
 * What it cannot see: the interpreter's internal calls on static and
 * optimised builds (see got-patch.c), and the first Py_Initialize call's
 * entry (the shim activates inside it, when the GIL is created).
 */
#include <dlfcn.h>
#include <errno.h>

#include "shim.h"

/* PyStatus (3.8+), returned by value: 32 bytes, in memory, like the real one. */
struct py_status {
	int type;
	const char *func;
	const char *err_msg;
	int exitcode;
};

/* The interpreter's definitions, by enum gtr_capi; resolved lazily, since
 * libpython may be loaded after the constructor and Py_Initialize runs
 * before activation.  Once tracing, a definition looked for and not found
 * is not looked for again (looked_up): a failed dlsym allocates. */
static void *real_fn[GTR_CAPI_COUNT];
static bool looked_up[GTR_CAPI_COUNT];

/* The first of PEP 788's, which only 3.15+ defines: capi_resolve() stops
 * before them (the ones every version 3.8+ has come first). */
#define CAPI_FIRST_OPTIONAL GTR_CAPI_PyInterpreterGuard_FromCurrent
_Static_assert(GTR_CAPI_PyThreadState_Release + 1 == GTR_CAPI_COUNT,
               "functions an interpreter may lack come last, from CAPI_FIRST_OPTIONAL");

/* libpython comes after the preload (RTLD_NEXT); a static executable's own
 * definitions come before it, and the global scope (the handle of the main
 * program, not RTLD_DEFAULT, which the shim's -Bsymbolic would answer with
 * the wrapper itself) finds them. */
static void *find_definition(enum gtr_capi fn)
{
	static void *main_program;
	const char *name = gtr_capi_names[fn];
	void *p = dlsym(RTLD_NEXT, name);
	if (p && p != capi_wrappers[fn])
		return p;
	RESOLVED(dlopen);
	if (!main_program)
		main_program = shim_real.dlopen(NULL, RTLD_NOW | RTLD_NOLOAD);
	p = main_program ? dlsym(main_program, name) : NULL;
	return p == capi_wrappers[fn] ? NULL : p;
}

void *capi_real(enum gtr_capi fn)
{
	void *p = __atomic_load_n(&real_fn[fn], __ATOMIC_RELAXED);
	if (unlikely(!p) && !__atomic_load_n(&looked_up[fn], __ATOMIC_RELAXED)) {
		p = find_definition(fn);
		__atomic_store_n(&real_fn[fn], p, __ATOMIC_RELAXED);
		if (shim_state == SHIM_ACTIVE) /* the interpreter is loaded by now */
			__atomic_store_n(&looked_up[fn], true, __ATOMIC_RELAXED);
	}
	return p;
}

/* Every version 3.8+ defines the functions before PEP 788's; those are
 * looked up only when got-patch.c finds an object importing one (a weak
 * or lazy import may still find none: then its slot is left alone).  A
 * failed dlsym is not free: glibc allocates its error message, which moves
 * the program's own heap reuse around. */
void capi_resolve(void)
{
	for (unsigned fn = 1; fn < CAPI_FIRST_OPTIONAL; fn++)
		capi_real((enum gtr_capi)fn);
}

#define REAL(fn, type) ((type)capi_real(GTR_CAPI_##fn))
#define CALLER() ((uintptr_t)__builtin_return_address(0))

/* Whether a call gets a stack (stack.c): the ones a finding may point at,
 * made while finalizing or with a thread state not known to be alive (a
 * freed one, or one the shim has not seen yet), and finalization's start. */
static bool call_wants_stack(enum gtr_capi fn, uintptr_t subject)
{
	if (stack_wanted(STACKS_ALL_CAPI))
		return true;
	if (fn == GTR_CAPI_Py_FinalizeEx || fn == GTR_CAPI_Py_Finalize)
		return stack_wanted(STACKS_FINALIZE);
	if (!stack_wanted(STACKS_SUSPECT_CAPI))
		return false;
	return gil_model_finalizing() || (subject && gtr_capi_subject_is_tstate(fn) && !tstate_table_find((void *)subject));
}

static void record_call(enum gtr_capi fn, uintptr_t subject, uintptr_t caller)
{
	if (!shim_enter())
		return;
	int saved_errno = errno;
	gil_model_check_finalizing();
	gil_model_check_enabled();
	if (fn == GTR_CAPI_Py_FinalizeEx || fn == GTR_CAPI_Py_Finalize)
		recorder_note_finalizing(true);
	uint64_t payload[2] = { subject, caller };
	stack_emit_if(call_wants_stack(fn, subject), GTR_EV_CAPI_CALL, fn, payload);
	errno = saved_errno;
	shim_leave();
}

/* `tstate`: the result is a thread state to learn. */
static void record_return(enum gtr_capi fn, uint64_t result, bool tstate)
{
	if (!shim_enter())
		return;
	int saved_errno = errno;
	gil_model_check_finalizing();
	gil_model_check_enabled();
	recorder_emit(GTR_EV_CAPI_RETURN, fn, &result);
	if (fn == GTR_CAPI_Py_Initialize || fn == GTR_CAPI_Py_InitializeEx || fn == GTR_CAPI_Py_InitializeFromConfig)
		recorder_note_finalizing(false); /* an embedder's next epoch */
	if (tstate)
		shim_know_tstate((uintptr_t)result);
	errno = saved_errno;
	shim_leave();
}

/* For the calls that may take the GIL: see the design note. */
static void record_return_if_finalizing(enum gtr_capi fn, uint64_t result)
{
	if (gil_model_finalizing())
		record_return(fn, result, false);
}

/* A thread state about to be cleared or deleted: make sure free() knows it. */
static void record_call_on_tstate(enum gtr_capi fn, void *tstate, uintptr_t caller)
{
	record_call(fn, (uintptr_t)tstate, caller);
	if (tstate && shim_enter()) {
		shim_know_tstate((uintptr_t)tstate);
		shim_leave();
	}
}

/* ---- the GIL and thread states ---------------------------------------- */

SHIM_EXPORT void *PyEval_SaveThread(void)
{
	void *tstate = REAL(PyEval_SaveThread, void *(*)(void))();
	record_return(GTR_CAPI_PyEval_SaveThread, (uintptr_t)tstate, true);
	return tstate;
}

SHIM_EXPORT void PyEval_RestoreThread(void *tstate)
{
	record_call(GTR_CAPI_PyEval_RestoreThread, (uintptr_t)tstate, CALLER());
	REAL(PyEval_RestoreThread, void (*)(void *))(tstate);
	record_return_if_finalizing(GTR_CAPI_PyEval_RestoreThread, (uintptr_t)tstate);
}

SHIM_EXPORT void PyEval_AcquireThread(void *tstate)
{
	record_call(GTR_CAPI_PyEval_AcquireThread, (uintptr_t)tstate, CALLER());
	REAL(PyEval_AcquireThread, void (*)(void *))(tstate);
	record_return_if_finalizing(GTR_CAPI_PyEval_AcquireThread, (uintptr_t)tstate);
}

SHIM_EXPORT void PyEval_ReleaseThread(void *tstate)
{
	record_call(GTR_CAPI_PyEval_ReleaseThread, (uintptr_t)tstate, CALLER());
	REAL(PyEval_ReleaseThread, void (*)(void *))(tstate);
}

SHIM_EXPORT void PyEval_AcquireLock(void)
{
	record_call(GTR_CAPI_PyEval_AcquireLock, 0, CALLER());
	REAL(PyEval_AcquireLock, void (*)(void))();
	record_return_if_finalizing(GTR_CAPI_PyEval_AcquireLock, 0);
}

SHIM_EXPORT void PyEval_ReleaseLock(void)
{
	record_call(GTR_CAPI_PyEval_ReleaseLock, 0, CALLER());
	REAL(PyEval_ReleaseLock, void (*)(void))();
}

/* ---- which interpreter (gh-59956) -----------------------------------------
 * PyGILState_Ensure on a thread without a thread state makes one in the
 * main interpreter, whoever started the thread: a native thread that a
 * subinterpreter's C code starts and that calls back through PyGILState_*
 * runs in the wrong interpreter (under the wrong GIL if the subinterpreter
 * has its own).  pthread_create notes the creator's interpreter when it is
 * not the main one; such a thread's Ensure calls record where they landed.
 * A thread started by a GIL holder costs two calls (its creator's thread
 * state and the main interpreter, resolved at start-up); the Ensure
 * calls of threads started from the main interpreter, one branch. */

bool capi_current_interp(uintptr_t *interp, uintptr_t *main_interp)
{
	if (!shim_python.tstate_unchecked || !shim_python.main_interp || !shim_python.tstate_off_interp)
		return false;
	const char *tstate = shim_python.tstate_unchecked();
	uintptr_t main = (uintptr_t)shim_python.main_interp();
	if (!tstate || !main)
		return false;
	uintptr_t its = *(const uintptr_t *)(tstate + shim_python.tstate_off_interp);
	if (!its)
		return false;
	*interp = its;
	*main_interp = main;
	return true;
}

/* After an Ensure by a thread started from a subinterpreter. */
static void record_gilstate_interp(void)
{
	if (!shim_enter())
		return;
	int saved_errno = errno;
	uint64_t payload[2];
	if (shim_self.gil_held && capi_current_interp((uintptr_t *)&payload[0], (uintptr_t *)&payload[1])) {
		/* the main interpreter: the finding's call, with its stack */
		bool suspect = payload[0] == payload[1] && stack_wanted(STACKS_SUSPECT_CAPI);
		stack_emit_if(suspect, GTR_EV_THREAD_INTERP, GTR_INTERP_OF_GILSTATE, payload);
	}
	errno = saved_errno;
	shim_leave();
}

SHIM_EXPORT int PyGILState_Ensure(void)
{
	record_call(GTR_CAPI_PyGILState_Ensure, 0, CALLER());
	int state = REAL(PyGILState_Ensure, int (*)(void))();
	record_return_if_finalizing(GTR_CAPI_PyGILState_Ensure, (uint64_t)state);
	if (unlikely(shim_self.creator_interp))
		record_gilstate_interp();
	return state;
}

SHIM_EXPORT void PyGILState_Release(int state)
{
	record_call(GTR_CAPI_PyGILState_Release, (uint64_t)state, CALLER());
	REAL(PyGILState_Release, void (*)(int))(state);
}

SHIM_EXPORT void *PyThreadState_New(void *interp)
{
	void *tstate = REAL(PyThreadState_New, void *(*)(void *))(interp);
	record_return(GTR_CAPI_PyThreadState_New, (uintptr_t)tstate, true);
	return tstate;
}

SHIM_EXPORT void PyThreadState_Clear(void *tstate)
{
	record_call_on_tstate(GTR_CAPI_PyThreadState_Clear, tstate, CALLER());
	REAL(PyThreadState_Clear, void (*)(void *))(tstate);
}

SHIM_EXPORT void PyThreadState_Delete(void *tstate)
{
	record_call_on_tstate(GTR_CAPI_PyThreadState_Delete, tstate, CALLER());
	REAL(PyThreadState_Delete, void (*)(void *))(tstate);
}

SHIM_EXPORT void PyThreadState_DeleteCurrent(void)
{
	record_call(GTR_CAPI_PyThreadState_DeleteCurrent, 0, CALLER());
	REAL(PyThreadState_DeleteCurrent, void (*)(void))();
}

SHIM_EXPORT void *PyThreadState_Swap(void *tstate)
{
	record_call(GTR_CAPI_PyThreadState_Swap, (uintptr_t)tstate, CALLER());
	void *old = REAL(PyThreadState_Swap, void *(*)(void *))(tstate);
	record_return(GTR_CAPI_PyThreadState_Swap, (uintptr_t)old, old != NULL);
	return old;
}

SHIM_EXPORT void PyThread_exit_thread(void)
{
	record_call(GTR_CAPI_PyThread_exit_thread, 0, CALLER());
	REAL(PyThread_exit_thread, void (*)(void))();
	__builtin_unreachable();
}

/* ---- interpreters -------------------------------------------------------- */

SHIM_EXPORT void *PyInterpreterState_New(void)
{
	void *interp = REAL(PyInterpreterState_New, void *(*)(void))();
	record_return(GTR_CAPI_PyInterpreterState_New, (uintptr_t)interp, false);
	return interp;
}

SHIM_EXPORT void PyInterpreterState_Clear(void *interp)
{
	record_call(GTR_CAPI_PyInterpreterState_Clear, (uintptr_t)interp, CALLER());
	REAL(PyInterpreterState_Clear, void (*)(void *))(interp);
}

SHIM_EXPORT void PyInterpreterState_Delete(void *interp)
{
	record_call(GTR_CAPI_PyInterpreterState_Delete, (uintptr_t)interp, CALLER());
	REAL(PyInterpreterState_Delete, void (*)(void *))(interp);
}

SHIM_EXPORT void *Py_NewInterpreter(void)
{
	record_call(GTR_CAPI_Py_NewInterpreter, 0, CALLER());
	void *tstate = REAL(Py_NewInterpreter, void *(*)(void))();
	record_return(GTR_CAPI_Py_NewInterpreter, (uintptr_t)tstate, tstate != NULL);
	return tstate;
}

SHIM_EXPORT void Py_EndInterpreter(void *tstate)
{
	record_call_on_tstate(GTR_CAPI_Py_EndInterpreter, tstate, CALLER());
	REAL(Py_EndInterpreter, void (*)(void *))(tstate);
}

/* ---- the runtime's life ------------------------------------------------- */

SHIM_EXPORT void Py_Initialize(void)
{
	record_call(GTR_CAPI_Py_Initialize, 0, CALLER());
	REAL(Py_Initialize, void (*)(void))();
	record_return(GTR_CAPI_Py_Initialize, 0, false);
}

SHIM_EXPORT void Py_InitializeEx(int install_sigs)
{
	record_call(GTR_CAPI_Py_InitializeEx, (uint64_t)install_sigs, CALLER());
	REAL(Py_InitializeEx, void (*)(int))(install_sigs);
	record_return(GTR_CAPI_Py_InitializeEx, 0, false);
}

SHIM_EXPORT struct py_status Py_InitializeFromConfig(const void *config)
{
	record_call(GTR_CAPI_Py_InitializeFromConfig, 0, CALLER());
	struct py_status status = REAL(Py_InitializeFromConfig, struct py_status (*)(const void *))(config);
	record_return(GTR_CAPI_Py_InitializeFromConfig, (uint64_t)(int64_t)status.type, false);
	return status;
}

SHIM_EXPORT int Py_FinalizeEx(void)
{
	record_call(GTR_CAPI_Py_FinalizeEx, 0, CALLER());
	int rc = REAL(Py_FinalizeEx, int (*)(void))();
	record_return(GTR_CAPI_Py_FinalizeEx, (uint64_t)(int64_t)rc, false);
	if (provoking(GTR_PROVOKE_EXIT_DELAY))
		provoke_after_finalize(); /* provoke=exit-delay: see provoke.c */
	return rc;
}

SHIM_EXPORT void Py_Finalize(void)
{
	record_call(GTR_CAPI_Py_Finalize, 0, CALLER());
	REAL(Py_Finalize, void (*)(void))();
	record_return(GTR_CAPI_Py_Finalize, 0, false);
	if (provoking(GTR_PROVOKE_EXIT_DELAY))
		provoke_after_finalize();
}

SHIM_EXPORT int Py_RunMain(void)
{
	record_call(GTR_CAPI_Py_RunMain, 0, CALLER());
	int rc = REAL(Py_RunMain, int (*)(void))();
	record_return(GTR_CAPI_Py_RunMain, (uint64_t)(int64_t)rc, false);
	return rc;
}

/* ---- PEP 788 (3.15): interpreter guards and thread-state tokens ----------
 * From CPython's source alone (Include/pystate.h as merged by gh-149116;
 * no 3.15 interpreter was tested).  A guard keeps its interpreter from
 * finalizing until it is closed: one never closed hangs Py_FinalizeEx.
 * PyThreadState_EnsureFromView returns NULL, instead of hanging as
 * PyGILState_Ensure does, once the interpreter is finalizing.  Each
 * successful Ensure takes exactly one Release; one more is a fatal error.
 * Every call records its CALL and its RETURN: they are rare, and the
 * detectors (tools/detect/detect-guard.c) pair them.  The types are opaque
 * pointers here.
 *
 * Unlike the wrappers above, these are not exported: 3.8-3.14 do not have
 * these functions, and a program that looks for them (dlsym, ctypes'
 * hasattr(pythonapi, ...)) must not find the shim's.  They are reached only
 * through the GOT slots got-patch.c routes (extension modules, embedding
 * programs, libpython's own PLT); a call through dlsym or ctypes is not
 * seen. */

static void *PyInterpreterGuard_FromCurrent(void)
{
	record_call(GTR_CAPI_PyInterpreterGuard_FromCurrent, 0, CALLER());
	void *guard = REAL(PyInterpreterGuard_FromCurrent, void *(*)(void))();
	record_return(GTR_CAPI_PyInterpreterGuard_FromCurrent, (uintptr_t)guard, false);
	return guard;
}

static void *PyInterpreterGuard_FromView(void *view)
{
	record_call(GTR_CAPI_PyInterpreterGuard_FromView, (uintptr_t)view, CALLER());
	void *guard = REAL(PyInterpreterGuard_FromView, void *(*)(void *))(view);
	record_return(GTR_CAPI_PyInterpreterGuard_FromView, (uintptr_t)guard, false);
	return guard;
}

static void PyInterpreterGuard_Close(void *guard)
{
	record_call(GTR_CAPI_PyInterpreterGuard_Close, (uintptr_t)guard, CALLER());
	REAL(PyInterpreterGuard_Close, void (*)(void *))(guard);
}

static void *PyThreadState_Ensure(void *guard)
{
	record_call(GTR_CAPI_PyThreadState_Ensure, (uintptr_t)guard, CALLER());
	void *token = REAL(PyThreadState_Ensure, void *(*)(void *))(guard);
	record_return(GTR_CAPI_PyThreadState_Ensure, (uintptr_t)token, false);
	return token;
}

static void *PyThreadState_EnsureFromView(void *view)
{
	record_call(GTR_CAPI_PyThreadState_EnsureFromView, (uintptr_t)view, CALLER());
	void *token = REAL(PyThreadState_EnsureFromView, void *(*)(void *))(view);
	record_return(GTR_CAPI_PyThreadState_EnsureFromView, (uintptr_t)token, false);
	return token;
}

static void PyThreadState_Release(void *token)
{
	record_call(GTR_CAPI_PyThreadState_Release, (uintptr_t)token, CALLER());
	REAL(PyThreadState_Release, void (*)(void *))(token);
}

void *const capi_wrappers[GTR_CAPI_COUNT] = {
	[GTR_CAPI_PyEval_SaveThread] = (void *)PyEval_SaveThread,
	[GTR_CAPI_PyEval_RestoreThread] = (void *)PyEval_RestoreThread,
	[GTR_CAPI_PyEval_AcquireThread] = (void *)PyEval_AcquireThread,
	[GTR_CAPI_PyEval_ReleaseThread] = (void *)PyEval_ReleaseThread,
	[GTR_CAPI_PyEval_AcquireLock] = (void *)PyEval_AcquireLock,
	[GTR_CAPI_PyEval_ReleaseLock] = (void *)PyEval_ReleaseLock,
	[GTR_CAPI_PyGILState_Ensure] = (void *)PyGILState_Ensure,
	[GTR_CAPI_PyGILState_Release] = (void *)PyGILState_Release,
	[GTR_CAPI_PyThreadState_New] = (void *)PyThreadState_New,
	[GTR_CAPI_PyThreadState_Clear] = (void *)PyThreadState_Clear,
	[GTR_CAPI_PyThreadState_Delete] = (void *)PyThreadState_Delete,
	[GTR_CAPI_PyThreadState_DeleteCurrent] = (void *)PyThreadState_DeleteCurrent,
	[GTR_CAPI_PyThreadState_Swap] = (void *)PyThreadState_Swap,
	[GTR_CAPI_PyInterpreterState_New] = (void *)PyInterpreterState_New,
	[GTR_CAPI_PyInterpreterState_Clear] = (void *)PyInterpreterState_Clear,
	[GTR_CAPI_PyInterpreterState_Delete] = (void *)PyInterpreterState_Delete,
	[GTR_CAPI_Py_Initialize] = (void *)Py_Initialize,
	[GTR_CAPI_Py_InitializeEx] = (void *)Py_InitializeEx,
	[GTR_CAPI_Py_InitializeFromConfig] = (void *)Py_InitializeFromConfig,
	[GTR_CAPI_Py_FinalizeEx] = (void *)Py_FinalizeEx,
	[GTR_CAPI_Py_Finalize] = (void *)Py_Finalize,
	[GTR_CAPI_Py_RunMain] = (void *)Py_RunMain,
	[GTR_CAPI_Py_NewInterpreter] = (void *)Py_NewInterpreter,
	[GTR_CAPI_Py_EndInterpreter] = (void *)Py_EndInterpreter,
	[GTR_CAPI_PyThread_exit_thread] = (void *)PyThread_exit_thread,
	[GTR_CAPI_PyInterpreterGuard_FromCurrent] = (void *)PyInterpreterGuard_FromCurrent,
	[GTR_CAPI_PyInterpreterGuard_FromView] = (void *)PyInterpreterGuard_FromView,
	[GTR_CAPI_PyInterpreterGuard_Close] = (void *)PyInterpreterGuard_Close,
	[GTR_CAPI_PyThreadState_Ensure] = (void *)PyThreadState_Ensure,
	[GTR_CAPI_PyThreadState_EnsureFromView] = (void *)PyThreadState_EnsureFromView,
	[GTR_CAPI_PyThreadState_Release] = (void *)PyThreadState_Release,
};
