/*
 * wrap-capi.c: CPython C-API interposers.
 *
 * Design note.  A preloaded definition of an exported CPython function is
 * called only where the dynamic linker routes the call through a PLT to
 * it: on shared libpython builds without -fno-semantic-interposition (the
 * pyenv builds) for the interpreter's own calls, and for calls from
 * embedding programs linked against libpython.  On a static interpreter
 * (Debian's python3) the executable's own definition wins and these
 * wrappers see nothing (cpython-internals.md §5); the pthread layer is the
 * primary signal and does not depend on them.
 *
 * Py_FinalizeEx: its entry and exit bracket finalization; the finalizing
 * flag itself flips inside it and is recorded by the GIL model.
 */
#include <dlfcn.h>
#include <errno.h>

#include "shim.h"

/* Resolved on first use: libpython may be dlopen'ed after our constructor. */
static int (*real_Py_FinalizeEx)(void);

SHIM_EXPORT int Py_FinalizeEx(void)
{
	if (!real_Py_FinalizeEx)
		real_Py_FinalizeEx = (int (*)(void))dlsym(RTLD_NEXT, "Py_FinalizeEx");
	if (shim_enter()) {
		int saved_errno = errno;
		recorder_emit(GTR_EV_FINALIZE_ENTER, 0, NULL);
		errno = saved_errno;
		shim_leave();
	}
	int rc = real_Py_FinalizeEx ? real_Py_FinalizeEx() : -1;
	if (shim_enter()) {
		int saved_errno = errno;
		uint64_t result = (uint64_t)(int64_t)rc;
		gil_model_check_finalizing();
		recorder_emit(GTR_EV_FINALIZE_EXIT, 0, &result);
		errno = saved_errno;
		shim_leave();
	}
	return rc;
}
