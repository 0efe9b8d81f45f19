/*
 * cpython-layout.h: the CPython memory layouts the shim relies on, in one
 * place (facts and sources: docs/cpython-internals.md).
 *
 * Each table row names the CPython struct and the versions it comes from.
 * The shim never trusts one number alone: a GIL is recognised by four init
 * calls at these distances and validated against _PyRuntime (gil-model.c),
 * and 3.13+ read offsets from _Py_DebugOffsets rather than from a table.
 * The static assertions tie the distances to glibc's pthread types, so a
 * wrong edit of one row fails the build instead of the recognition.
 */
#ifndef GILTRACE_CPYTHON_LAYOUT_H
#define GILTRACE_CPYTHON_LAYOUT_H

#include <pthread.h>
#include <stddef.h>

/* ---- struct _gil_runtime_state (Include/internal/pycore_gil.h) ------------
 * interval, last_holder, locked, switch_number, cond, mutex, switch_cond,
 * switch_mutex in every version 3.8-3.14 (FORCE_SWITCHING is always
 * defined).  Free-threaded builds (3.13t+) put `int enabled` first, which
 * shifts every field by 8. */
#define GIL_OFF_LAST_HOLDER 8    /* PyThreadState *, via _Py_atomic_address */
#define GIL_OFF_LOCKED 16        /* int: -1 uninitialised, 0 free, 1 held */
#define GIL_OFF_SWITCH_NUMBER 24 /* unsigned long */
#define GIL_OFF_COND 32          /* pthread_cond_t (PyCOND_T) */
#define GIL_SIZE 208             /* sizeof(struct _gil_runtime_state) */
#define GIL_FREE_THREADED_SHIFT 8 /* 3.13t+: `int enabled` first */

/* create_gil() initialises mutex, switch_mutex, cond, switch_cond: their
 * distances from cond are the signature of a GIL (gil-model.c). */
#define GIL_MUTEX_FROM_COND 48         /* cond + sizeof(pthread_cond_t) */
#define GIL_SWITCH_COND_FROM_COND 88   /* mutex + sizeof(pthread_mutex_t) */
#define GIL_SWITCH_MUTEX_FROM_COND 136 /* switch_cond + sizeof(pthread_cond_t) */
#define GIL_TAIL_FROM_COND 176         /* cond .. end of switch_mutex */

_Static_assert(GIL_MUTEX_FROM_COND == sizeof(pthread_cond_t), "mutex follows cond");
_Static_assert(GIL_SWITCH_COND_FROM_COND == GIL_MUTEX_FROM_COND + sizeof(pthread_mutex_t),
               "switch_cond follows mutex");
_Static_assert(GIL_SWITCH_MUTEX_FROM_COND == GIL_SWITCH_COND_FROM_COND + sizeof(pthread_cond_t),
               "switch_mutex follows switch_cond");
_Static_assert(GIL_TAIL_FROM_COND == GIL_SWITCH_MUTEX_FROM_COND + sizeof(pthread_mutex_t),
               "switch_mutex ends the GIL");
_Static_assert(GIL_OFF_COND + GIL_TAIL_FROM_COND == GIL_SIZE, "cond..switch_mutex end the struct");
_Static_assert(GIL_OFF_SWITCH_NUMBER + sizeof(unsigned long) == GIL_OFF_COND, "cond follows switch_number");

/* ---- the finalizing thread state in _PyRuntimeState (pycore_runtime.h) ---
 * Each row: the first and last minor version and the offset of the field
 * that is non-NULL once Py_FinalizeEx began. */
struct cpython_finalizing_row {
	unsigned first_minor, last_minor;
	long offset;
	const char *field;
};
static const struct cpython_finalizing_row cpython_finalizing_rows[] = {
	{ 8, 8, 16, "_PyRuntimeState.finalizing (PyThreadState *)" },
	{ 9, 10, 16, "_PyRuntimeState._finalizing (_Py_atomic_address)" },
	{ 11, 12, 24, "_PyRuntimeState._finalizing (_Py_atomic_address)" },
};

/* ---- _Py_DebugOffsets at the start of _PyRuntime (3.13+) -----------------
 * cookie[8] "xdebugpy", version (PY_VERSION_HEX), free_threaded, then
 * runtime_state {size, finalizing, interpreters_head}. */
#define DEBUG_OFFSETS_COOKIE "xdebugpy"
#define DEBUG_OFFSETS_FIRST_MINOR 13
#define DEBUG_OFFSETS_OFF_FREE_THREADED 16   /* uint64_t, 1 on 3.13t+ */
#define DEBUG_OFFSETS_OFF_FINALIZING 32      /* uint64_t: offset in _PyRuntime */
/* Then interpreter_state {size, id, next, threads_head, [threads_main,] gc,
 * imports_modules, sysdict, builtins, ceval_gil, gil_runtime_state,
 * gil_runtime_state_enabled, gil_runtime_state_locked,
 * gil_runtime_state_holder, ...} and thread_state {size, prev, next,
 * interp, ...}: offsets inside PyInterpreterState of its own GIL (_gil) and
 * of two of its fields, and of a thread state's interpreter, as the
 * interpreter itself was compiled.  Where those entries sit in
 * _Py_DebugOffsets depends on the version: one row each.  3.13 is read off
 * 3.13.0 and 3.13.15 (tested); 3.14 inserts threads_main after
 * threads_head and appends two fields to interpreter_state, and 3.15 keeps
 * 3.14's layout up to thread_state.interp: both rows are from CPython's
 * source alone (Include/internal/pycore_debug_offsets.h, 3.14.0b4+ and
 * 3.15 copies; no such interpreter was tested).  A version without a row
 * keeps the tables.  (3.13.15t leaves gil_runtime_state_enabled 0: not
 * read.) */
struct cpython_debug_offsets_row {
	unsigned first_minor, last_minor;
	unsigned gil_state, gil_locked, gil_holder; /* where the entries are */
	unsigned tstate_interp;
};
static const struct cpython_debug_offsets_row cpython_debug_offsets_rows[] = {
	{ 13, 13, 120, 136, 144, 176 },
	{ 14, 15, 128, 144, 152, 200 },
};
#define DEBUG_OFFSETS_OFF_VERSION 8           /* uint64_t: PY_VERSION_HEX */

/* ---- struct _ts (Include/cpython/pystate.h) -----------------------------
 * prev, next, interp begin PyThreadState in every version 3.8-3.15. */
#define TSTATE_OFF_INTERP 16     /* PyInterpreterState * */

/* ---- the debug allocator (Objects/obmalloc.c, every version) -------------
 * PYTHONMALLOC=debug and --with-pydebug builds put two size_t words (the
 * size and the API id with padding) in front of each block they hand out:
 * a thread state's malloc block starts this far below the thread state. */
#define DEBUG_ALLOC_HEADER (2 * sizeof(size_t))
_Static_assert(DEBUG_ALLOC_HEADER == 16, "the debug allocator's header on 64-bit");

#endif /* GILTRACE_CPYTHON_LAYOUT_H */
