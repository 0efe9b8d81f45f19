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
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- Python frames, code objects, strings and a Thread's name -----------
 * What pystack.c and pyobject.c read to record a thread's Python stack and
 * the name of a threading.Thread it starts.  Rows 3.8-3.13t: offsetof() against each
 * interpreter's own headers (3.8.18, 3.9.18, 3.10.13, 3.11.7 and Debian's
 * 3.11.2, 3.12.1, 3.13.0, 3.13.15, 3.13.15t), and walked at run time on
 * each (docs/cpython-internals.md §10).  3.13+ take the frame, code,
 * object and string offsets from _Py_DebugOffsets instead (the positions
 * of those entries: one row per version below); the rows still give what
 * _Py_DebugOffsets lacks (the instance dictionary's layout).
 *
 * The frame chain: 3.8-3.10 tstate->frame (PyFrameObject, f_back); 3.11
 * and 3.12 tstate->cframe->current_frame; 3.13+ tstate->current_frame
 * (_PyInterpreterFrame, previous).  The instruction: 3.8/3.9 f_lasti in
 * bytes, 3.10 f_lasti in code units, 3.11/3.12 prev_instr and 3.13+
 * instr_ptr as pointers into co_code_adaptive.  A Thread's attributes:
 * 3.8-3.10 a dict at tp_dictoffset; 3.11 values (obj-32) or a dict
 * (obj-24); 3.12 one tagged word at obj-24 (bit 0: values); 3.13 a dict at
 * obj-24 (-8 free-threaded) or values inline at tp_basicsize, with the
 * shared keys of the type (ht_cached_keys). */
enum py_instr_kind {
	PY_INSTR_LASTI_BYTES = 1,  /* int f_lasti: byte offset (3.8, 3.9) */
	PY_INSTR_LASTI_UNITS,      /* int f_lasti: code units (3.10) */
	PY_INSTR_POINTER,          /* prev_instr / instr_ptr into co_code_adaptive */
};
enum py_dict_kind {
	PY_DICT_NONE = 0,          /* names not read */
	PY_DICT_AT_OFFSET,         /* 3.8-3.10 */
	PY_DICT_MANAGED_311,
	PY_DICT_OR_VALUES_312,
	PY_DICT_INLINE_313,
};
struct py_layout {
	unsigned first_minor, last_minor;
	bool free_threaded;
	/* objects, thread state, frames */
	unsigned ob_type;
	unsigned tstate_frame;     /* frame, cframe or current_frame */
	int cframe_current;        /* _PyCFrame.current_frame (3.11, 3.12), else -1 */
	unsigned frame_back, frame_code, frame_instr, frame_localsplus;
	int frame_owner;           /* 3.12+: its owner byte, -1 none */
	unsigned owner_cstack;     /* the owner of the C stack's entry frames */
	unsigned instr_kind;       /* enum py_instr_kind */
	/* code objects, str, bytes */
	unsigned code_filename, code_name, code_qualname /* 0 none */, code_firstlineno, code_linetable;
	unsigned code_adaptive;    /* co_code_adaptive (3.11+), 0 none */
	unsigned linetable_format; /* enum pyline_format */
	unsigned str_length, str_state, str_ascii_size, str_compact_size;
	unsigned bytes_size, bytes_sval;
	/* Thread._name */
	unsigned dict_kind;        /* enum py_dict_kind */
	unsigned tp_basicsize, tp_flags, tp_dictoffset, ht_cached_keys;
	uint64_t flag_managed_dict, flag_inline_values;
	int managed_dict, managed_values; /* from the object, -1 none */
	unsigned ma_keys, ma_values;
	bool dk_log2;              /* 3.11+: u8 log2 size, u8 log2 index bytes, u8 kind */
	unsigned dk_size, dk_nentries, dk_indices; /* dk_size: 3.8-3.10 only */
	unsigned values_array, values_valid; /* PyDictValues: values[0]; 3.13 valid byte */
	unsigned method_self;      /* PyMethodObject.im_self */
	/* filled in by pyobject.c and pystack.c */
	bool usable;
	unsigned frame_read, code_read; /* bytes read per frame, per code object */
};

/* str's state: kind (3 bits), compact, ascii, in every version 3.8-3.13 */
#define PY_STR_KIND_SHIFT 2
#define PY_STR_COMPACT_SHIFT 5
#define PY_STR_ASCII_SHIFT 6
/* pythread_callback {func, arg} (Python/thread_pthread.h) and the
 * _threadmodule.c bootstate's func, in every version 3.8-3.13 */
#define PY_CALLBACK_ARG 8
#define PY_BOOTSTATE_FUNC 8

#define PY_ROW_OBJECTS_GIL                                                                         \
	.ob_type = 8, .bytes_size = 16, .bytes_sval = 32, .str_length = 16, .str_state = 32,      \
	.tp_basicsize = 32, .tp_flags = 168, .tp_dictoffset = 288, .ma_keys = 32, .ma_values = 40, \
	.method_self = 24
#define PY_ROW_FRAME_OBJECTS                                                                       \
	.tstate_frame = 24, .cframe_current = -1, .frame_back = 24, .frame_code = 32, .frame_owner = -1, \
	.code_filename = 104, .code_name = 112, .code_firstlineno = 40, .code_linetable = 120,      \
	.str_ascii_size = 48, .str_compact_size = 72, .dict_kind = PY_DICT_AT_OFFSET, .managed_dict = -1, \
	.managed_values = -1, .dk_size = 8, .dk_nentries = 32, .dk_indices = 40
#define PY_ROW_KEYS_LOG2 .dk_log2 = true, .dk_nentries = 24, .dk_indices = 32

static const struct py_layout py_layout_rows[] = {
	{ 8, 8, false, PY_ROW_OBJECTS_GIL, PY_ROW_FRAME_OBJECTS, .frame_instr = 104, .frame_localsplus = 360,
	  .instr_kind = PY_INSTR_LASTI_BYTES, .linetable_format = 1 /* PYLINE_LNOTAB */, .ht_cached_keys = 872 },
	{ 9, 9, false, PY_ROW_OBJECTS_GIL, PY_ROW_FRAME_OBJECTS, .frame_instr = 104, .frame_localsplus = 360,
	  .instr_kind = PY_INSTR_LASTI_BYTES, .linetable_format = 1 /* PYLINE_LNOTAB */, .ht_cached_keys = 864 },
	{ 10, 10, false, PY_ROW_OBJECTS_GIL, PY_ROW_FRAME_OBJECTS, .frame_instr = 96, .frame_localsplus = 352,
	  .instr_kind = PY_INSTR_LASTI_UNITS, .linetable_format = 2 /* PYLINE_LINETABLE_310 */, .ht_cached_keys = 872 },
	{ 11, 11, false, PY_ROW_OBJECTS_GIL, PY_ROW_KEYS_LOG2, .tstate_frame = 56, .cframe_current = 8,
	  .frame_back = 48, .frame_code = 32, .frame_instr = 56, .frame_localsplus = 72, .frame_owner = -1,
	  .instr_kind = PY_INSTR_POINTER, .code_filename = 112, .code_name = 120, .code_qualname = 128,
	  .code_firstlineno = 72, .code_linetable = 136, .code_adaptive = 184, .linetable_format = 3,
	  .str_ascii_size = 48, .str_compact_size = 72, .dict_kind = PY_DICT_MANAGED_311, .ht_cached_keys = 872,
	  .flag_managed_dict = 1u << 4, .managed_dict = -24, .managed_values = -32 },
	{ 12, 12, false, PY_ROW_OBJECTS_GIL, PY_ROW_KEYS_LOG2, .tstate_frame = 56, .cframe_current = 0,
	  .frame_back = 8, .frame_code = 0, .frame_instr = 56, .frame_localsplus = 72, .frame_owner = 70,
	  .owner_cstack = 3, .instr_kind = PY_INSTR_POINTER, .code_filename = 112, .code_name = 120,
	  .code_qualname = 128, .code_firstlineno = 68, .code_linetable = 136, .code_adaptive = 192,
	  .linetable_format = 3, .str_ascii_size = 40, .str_compact_size = 56, .dict_kind = PY_DICT_OR_VALUES_312,
	  .ht_cached_keys = 880, .flag_managed_dict = 1u << 4, .managed_dict = -24, .managed_values = -24 },
	{ 13, 13, false, PY_ROW_OBJECTS_GIL, PY_ROW_KEYS_LOG2, .tstate_frame = 72, .cframe_current = -1,
	  .frame_back = 8, .frame_code = 0, .frame_instr = 56, .frame_localsplus = 72, .frame_owner = 70,
	  .owner_cstack = 3, .instr_kind = PY_INSTR_POINTER, .code_filename = 112, .code_name = 120,
	  .code_qualname = 128, .code_firstlineno = 68, .code_linetable = 136, .code_adaptive = 200,
	  .linetable_format = 3, .str_ascii_size = 40, .str_compact_size = 56, .dict_kind = PY_DICT_INLINE_313,
	  .ht_cached_keys = 880, .flag_managed_dict = 1u << 4, .flag_inline_values = 1u << 2,
	  .managed_dict = -24, .managed_values = -1, .values_array = 8, .values_valid = 3 },
	/* 3.13t: a 32-byte object header moves every object's field by 16;
	 * frames and thread states do not move; no GC header before the
	 * managed dict */
	{ 13, 13, true, PY_ROW_KEYS_LOG2, .ob_type = 24, .bytes_size = 32, .bytes_sval = 48, .str_length = 32,
	  .str_state = 48, .tp_basicsize = 48, .tp_flags = 184, .tp_dictoffset = 304, .ma_keys = 48, .ma_values = 56,
	  .method_self = 40, .tstate_frame = 72, .cframe_current = -1, .frame_back = 8, .frame_code = 0,
	  .frame_instr = 56, .frame_localsplus = 72, .frame_owner = 70, .owner_cstack = 3,
	  .instr_kind = PY_INSTR_POINTER, .code_filename = 128, .code_name = 136, .code_qualname = 144,
	  .code_firstlineno = 84, .code_linetable = 152, .code_adaptive = 216, .linetable_format = 3,
	  .str_ascii_size = 56, .str_compact_size = 72, .dict_kind = PY_DICT_INLINE_313, .ht_cached_keys = 896,
	  .flag_managed_dict = 1u << 4, .flag_inline_values = 1u << 2, .managed_dict = -8, .managed_values = -1,
	  .values_array = 8, .values_valid = 3 },
};

/* Where _Py_DebugOffsets (3.13) keeps the entries pyobject.c reads: each
 * a uint64_t, the offset (or size) as the interpreter was compiled; by
 * offsetof() against 3.13.0, 3.13.15 and 3.13.15t and read at run time.
 * 3.14+ have no row here, nor above: their frames are not read (3.14
 * tags f_executable as a _PyStackRef, and its free-threaded builds run
 * per-thread copies of the bytecode; no such interpreter was tested). */
struct py_debug_offsets_row {
	unsigned first_minor, last_minor;
	unsigned tstate_current_frame, frame_previous, frame_executable, frame_instr_ptr, frame_localsplus,
	        frame_owner, code_filename, code_name, code_qualname, code_linetable, code_firstlineno,
	        code_adaptive, ob_type, bytes_size, bytes_sval, str_state, str_length, str_ascii_size;
};
static const struct py_debug_offsets_row py_debug_offsets_rows[] = {
	{ 13, 13, 184, 232, 240, 248, 256, 264, 280, 288, 296, 304, 312, 344, 360, 520, 528, 544, 552, 560 },
};

#endif /* GILTRACE_CPYTHON_LAYOUT_H */
