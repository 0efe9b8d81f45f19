/*
 * pystack.c: the Python stack and the Python thread name at the events that
 * explain a finding.
 *
 * Design note.  A Python developer reads a finding in Python terms: which
 * thread (threading.Thread.name), at which line of which function.  So
 * wherever the shim takes a native stack (stack.c: rare events, never an
 * ordinary handoff) it also walks the calling thread's Python frames and
 * copies each frame's function name, file and line into the trace (the
 * code objects die with the process).  The thread's frames are found from
 * the thread state a C-API call was handed (PyEval_RestoreThread(tstate):
 * freed or not, those are the frames it resumes), else from its own: the
 * attached one (PyThreadState_GetUnchecked, 3.8-3.11: the GIL holder's,
 * so only while this thread holds the GIL), else the one bound to the
 * thread (PyGILState_GetThisThreadState), else the last one it took the
 * GIL with (finalization unbinds them).  The trace says which.  The
 * field offsets come from the interpreter's _Py_DebugOffsets on 3.13+ and
 * from a table per version before (cpython-layout.h); lines are computed
 * from the code's line table as PyCode_Addr2Line does (pyline.c).
 *
 * Every read goes through process_vm_readv() on the own process: a thread
 * state that was freed (the very thing freed-tstate-use is about), a frame
 * torn by another thread, an unmapped data-stack chunk give an error code,
 * which the trace keeps ("unreadable"), never a fault.  Objects are checked
 * by type (PyCode_Type, PyUnicode_Type, PyBytes_Type) before their fields
 * are believed, and a walk is bounded by the depth asked for and by the
 * event's room.
 *
 * Thread names: when a thread that holds the GIL starts another,
 * pthread_create's argument is CPython's {func, arg} callback, arg its
 * bootstate and bootstate->func the bound method Thread._bootstrap: its
 * __self__ is the Thread, whose `_name` attribute is read from its
 * instance dictionary (one row per version, cpython-layout.h).  The child
 * records it after its start event.
 *
 * A name given later (thread.name = ... in run()) is seen at the thread's
 * next Python stack that reaches Thread._bootstrap_inner, whose first
 * local is the Thread: a new THREAD_PYNAME when the name changed.
 *
 * What it cannot see: a rename with no stack taken after it (or a stack
 * cut by py_stack_depth before the thread's outermost frames), threads not
 * started by threading (a C thread's PyGILState_Ensure: no Thread), frames of a thread whose thread state the
 * shim cannot find, and C functions between Python frames (the native
 * stack has them).
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include <dlfcn.h>

#include "cpython-layout.h"
#include "pyline.h"
#include "shim.h"

/* Bounds of one walk's reads (bytes): a str's header, a bytes object's
 * header, the longest line table read (a longer one gives line -1), a
 * frame, a code object. */
#define PY_STR_HEADER_MAX 96
#define PY_BYTES_HEADER_MAX 64
#define PY_LINETABLE_MAX 2048
#define PY_FRAME_READ_MAX 256
#define PY_CODE_READ_MAX 256

static struct py_layout py_layout;

/* The objects whose types prove what a pointer is. */
static uintptr_t type_code, type_unicode, type_bytes, type_method;
static void *(*this_thread_state)(void);

/* The process reads go to: set by each walk (a fork child has its own). */
static pid_t self_pid;

static uintptr_t instance_attr(uintptr_t obj, const char *name, int *err);
static int read_str(uintptr_t addr, char *out, size_t size, bool keep_end, bool *cut, int *err);

/* ---- safe reads ----------------------------------------------------------- */

static void reads_begin(void)
{
	__atomic_store_n(&self_pid, getpid(), __ATOMIC_RELAXED);
}

/* Reads len bytes at addr of this process; the bytes read (a short count
 * where the memory ends), or -1 with *err set. */
static ssize_t peek_some(uintptr_t addr, void *buf, size_t len, int *err)
{
	struct iovec local = { buf, len }, remote = { (void *)addr, len };
	if (!addr) {
		*err = EFAULT;
		return -1;
	}
	ssize_t n = process_vm_readv(__atomic_load_n(&self_pid, __ATOMIC_RELAXED), &local, 1, &remote, 1, 0);
	if (n < 0)
		*err = errno;
	return n;
}

static bool peek(uintptr_t addr, void *buf, size_t len, int *err)
{
	ssize_t n = peek_some(addr, buf, len, err);
	if (n >= 0 && (size_t)n < len)
		*err = EFAULT;
	return n >= 0 && (size_t)n == len;
}

static uint64_t word_at(const unsigned char *buf, unsigned off)
{
	uint64_t w;
	memcpy(&w, buf + off, sizeof w);
	return w;
}

static uint32_t u32_at(const unsigned char *buf, unsigned off)
{
	uint32_t w;
	memcpy(&w, buf + off, sizeof w);
	return w;
}

/* Whether the object at addr has exactly type `type`. */
static bool is_a(uintptr_t addr, uintptr_t type, int *err)
{
	uint64_t t;
	return type && peek(addr + py_layout.ob_type, &t, sizeof t, err) && t == type;
}

/* ---- strings ---------------------------------------------------------------- */

static size_t put_utf8(char *out, size_t at, size_t size, uint32_t cp)
{
	char b[4];
	size_t n;
	if (cp < 0x80) {
		b[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		b[0] = (char)(0xc0 | cp >> 6);
		b[1] = (char)(0x80 | (cp & 0x3f));
		n = 2;
	} else if (cp < 0x10000) {
		b[0] = (char)(0xe0 | cp >> 12);
		b[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[2] = (char)(0x80 | (cp & 0x3f));
		n = 3;
	} else {
		b[0] = (char)(0xf0 | (cp >> 18 & 0x07));
		b[1] = (char)(0x80 | (cp >> 12 & 0x3f));
		b[2] = (char)(0x80 | (cp >> 6 & 0x3f));
		b[3] = (char)(0x80 | (cp & 0x3f));
		n = 4;
	}
	if (at + n > size)
		return 0;
	memcpy(out + at, b, n);
	return n;
}

/* A str object's text as UTF-8 into out (not terminated); its byte count,
 * or -1 (not a compact str, or unreadable).  `keep_end`: a text longer than
 * `size` characters keeps its end (a file's path), else its start; *cut
 * says so.  Two reads: the header, then the characters kept. */
static int read_str(uintptr_t addr, char *out, size_t size, bool keep_end, bool *cut, int *err)
{
	const struct py_layout *l = &py_layout;
	unsigned char head[PY_STR_HEADER_MAX], chars[4 * GTR_PY_FILE_MAX];
	*cut = false;
	if (!peek(addr, head, l->str_compact_size, err) || word_at(head, l->ob_type) != type_unicode)
		return -1;
	uint64_t length = word_at(head, l->str_length);
	uint32_t state = u32_at(head, l->str_state);
	unsigned kind = state >> PY_STR_KIND_SHIFT & 7u;
	bool compact = state >> PY_STR_COMPACT_SHIFT & 1u, ascii = state >> PY_STR_ASCII_SHIFT & 1u;
	if (!compact || (kind != 1 && kind != 2 && kind != 4) || length > (UINT64_C(1) << 40))
		return -1;
	uint64_t count = length < size ? length : size, from = keep_end ? length - count : 0;
	*cut = count < length;
	if (count * kind > sizeof chars ||
	    !peek(addr + (ascii ? l->str_ascii_size : l->str_compact_size) + from * kind, chars, count * kind, err))
		return -1;
	size_t at = 0;
	for (uint64_t i = 0; i < count; i++) {
		const unsigned char *p = chars + i * kind;
		uint32_t cp = kind == 1 ? p[0] : kind == 2 ? (uint32_t)(p[0] | p[1] << 8) : u32_at(p, 0);
		size_t n = put_utf8(out, at, size, cp);
		if (!n) {
			*cut = true;
			break;
		}
		at += n;
	}
	return (int)at;
}

/* ---- frames ------------------------------------------------------------------ */

/* The thread state whose frames are this thread's, and where it came
 * from (enum gtr_py_stack_source). */
static uintptr_t own_thread_state(unsigned *source)
{
	uintptr_t t = 0;
	if (shim_python.tstate_unchecked && (shim_self.gil_held || shim_python.version_hex >= 0x030C0000) &&
	    (t = (uintptr_t)shim_python.tstate_unchecked()))
		*source = GTR_PY_SOURCE_ATTACHED;
	else if (this_thread_state && (t = (uintptr_t)this_thread_state()))
		*source = GTR_PY_SOURCE_BOUND;
	else if ((t = shim_self.known_tstate))
		*source = GTR_PY_SOURCE_LAST_USED; /* finalization may have unbound it */
	return t;
}

/* The innermost frame of a thread state, 0 with *err when unreadable. */
static uintptr_t first_frame(uintptr_t tstate, int *err)
{
	uint64_t f;
	if (!peek(tstate + py_layout.tstate_frame, &f, sizeof f, err))
		return 0;
	if (py_layout.cframe_current >= 0 && f && !peek(f + (unsigned)py_layout.cframe_current, &f, sizeof f, err))
		return 0;
	return f;
}

/* The byte offset of the frame's current instruction in its code, or -1. */
static int frame_offset(const unsigned char *frame, uintptr_t code)
{
	const struct py_layout *l = &py_layout;
	switch (l->instr_kind) {
	case PY_INSTR_LASTI_BYTES:
		return (int32_t)u32_at(frame, l->frame_instr);
	case PY_INSTR_LASTI_UNITS: {
		int32_t lasti = (int32_t)u32_at(frame, l->frame_instr);
		return lasti < 0 || lasti > (1 << 28) ? -1 : 2 * lasti;
	}
	case PY_INSTR_POINTER: {
		uint64_t p = word_at(frame, l->frame_instr), start = code + l->code_adaptive;
		if (p < start || p - start > (1u << 30))
			return -1;
		return (int)(p - start);
	}
	}
	return -1;
}

/* The line of a code object's instruction at byte offset `offset`. */
static int code_line(const unsigned char *code, int offset, int *err)
{
	const struct py_layout *l = &py_layout;
	unsigned char buf[PY_BYTES_HEADER_MAX + PY_LINETABLE_MAX];
	int first = (int)u32_at(code, l->code_firstlineno);
	uintptr_t table = word_at(code, l->code_linetable);
	if (offset < 0)
		return -1;
	ssize_t got = peek_some(table, buf, sizeof buf, err);
	if (got < (ssize_t)l->bytes_sval || word_at(buf, l->ob_type) != type_bytes)
		return -1;
	uint64_t len = word_at(buf, l->bytes_size);
	if (len > (uint64_t)got - l->bytes_sval)
		return -1; /* longer than we read: a line we cannot know */
	return pyline_from_table(l->linetable_format, buf + l->bytes_sval, (size_t)len, first, offset);
}

/* FNV-1a of a name: whether it changed since last recorded. */
static uint64_t name_hash(const void *bytes, unsigned len)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (unsigned i = 0; i < len; i++)
		h = (h ^ ((const unsigned char *)bytes)[i]) * UINT64_C(0x100000001b3);
	return h | 1; /* never 0: no name recorded */
}

void pystack_record_name(const uint64_t *name, unsigned len)
{
	shim_self.py_name_hash = name_hash(name, len);
	recorder_emit(GTR_EV_THREAD_PYNAME, (len + 7u) / 8u, name);
}

/* A threading thread's outermost frames are Thread._bootstrap_inner's,
 * whose first local is the Thread: its name now, recorded if it changed
 * since the thread started (thread.name = ... in run()). */
static void refresh_name(uintptr_t frame)
{
	uint64_t self, name[GTR_PY_NAME_MAX / 8] = { 0 };
	int err = 0, len;
	uintptr_t text;
	bool cut;
	if (py_layout.dict_kind == PY_DICT_NONE || !shim_self.py_name_hash ||
	    !peek(frame + py_layout.frame_localsplus, &self, sizeof self, &err) ||
	    !(text = instance_attr(self, "_name", &err)) ||
	    (len = read_str(text, (char *)name, sizeof name, false, &cut, &err)) <= 0 ||
	    name_hash(name, (unsigned)len) == shim_self.py_name_hash)
		return;
	pystack_record_name(name, (unsigned)len);
}

static bool ends_with(const char *s, int len, const char *end)
{
	int n = (int)strlen(end);
	return len >= n && memcmp(s + len - n, end, (size_t)n) == 0;
}

/* Whether a frame is threading's Thread._bootstrap_inner (a qualified
 * name on 3.11+). */
static bool is_bootstrap_inner(const char *fn, int fn_len, const char *file, int file_len)
{
	return (fn_len == 16 || ends_with(fn, fn_len, "._bootstrap_inner")) && ends_with(fn, fn_len, "_bootstrap_inner") &&
	       ends_with(file, file_len, "/threading.py");
}

/* A frame into the payload: its frame word and the names.  Returns the
 * words used, 0 if they do not fit in `room`. */
static unsigned put_frame(uint64_t *out, unsigned room, int line, const char *fn, unsigned fn_len, const char *file,
                          unsigned file_len, unsigned flags)
{
	unsigned words = 1u + (fn_len + file_len + 7u) / 8u;
	if (words > room)
		return 0;
	out[0] = gtr_py_frame_word(line, fn_len, file_len, flags);
	memset(out + 1, 0, (words - 1u) * 8u);
	memcpy((char *)(out + 1), fn, fn_len);
	memcpy((char *)(out + 1) + fn_len, file, file_len);
	return words;
}

unsigned pystack_capture(uint64_t *out, unsigned room, uintptr_t tstate, bool in_handler)
{
	const struct py_layout *l = &py_layout;
	unsigned depth = shim_options.py_stack_depth;
	if (!depth || room < 2)
		return 0;
	int saved_errno = errno, err = 0;
	unsigned used = 2, frames = 0, steps = 0, end = GTR_PY_STACK_COMPLETE;
	unsigned source = tstate ? GTR_PY_SOURCE_ARGUMENT : GTR_PY_SOURCE_NONE;
	reads_begin();
	if (!tstate && l->usable)
		tstate = own_thread_state(&source);
	uintptr_t f = tstate ? first_frame(tstate, &err) : 0;
	if (!l->usable)
		end = GTR_PY_STACK_NO_LAYOUT;
	else if (!tstate)
		end = GTR_PY_STACK_NO_THREAD_STATE;
	else if (err)
		end = GTR_PY_STACK_UNREADABLE;
	for (uintptr_t prev = 0; end == GTR_PY_STACK_COMPLETE && f; prev = f) {
		unsigned char frame[PY_FRAME_READ_MAX], code[PY_CODE_READ_MAX];
		if (!peek(f, frame, l->frame_read, &err)) {
			end = GTR_PY_STACK_UNREADABLE;
			break;
		}
		uintptr_t next = word_at(frame, l->frame_back), co = word_at(frame, l->frame_code);
		if (next == f || next == prev || ++steps > 4 * depth + 16) {
			end = GTR_PY_STACK_BAD_FRAME; /* a loop: a torn chain */
			break;
		}
		/* 3.12+: the C stack's entry frames; 3.13+: f_executable need
		 * not be code, so every frame's code is checked by its type */
		bool shim_frame = l->frame_owner >= 0 && frame[l->frame_owner] == l->owner_cstack;
		int code_err = 0;
		if (shim_frame || !peek(co, code, l->code_read, &code_err) || word_at(code, l->ob_type) != type_code) {
			f = next;
			continue;
		}
		if (frames == depth) {
			end = GTR_PY_STACK_DEPTH;
			break;
		}
		char fn[GTR_PY_FUNCTION_MAX], file[GTR_PY_FILE_MAX];
		unsigned flags = 0;
		bool cut;
		int fn_len, file_len, line;
		uintptr_t name = l->code_qualname ? word_at(code, l->code_qualname) : 0;
		if (name && (fn_len = read_str(name, fn, sizeof fn, false, &cut, &code_err)) >= 0)
			flags |= GTR_PY_FRAME_QUALIFIED;
		else
			fn_len = read_str(word_at(code, l->code_name), fn, sizeof fn, false, &cut, &code_err);
		if (fn_len >= 0 && cut)
			flags |= GTR_PY_FRAME_FUNCTION_CUT;
		file_len = read_str(word_at(code, l->code_filename), file, sizeof file, true, &cut, &code_err);
		if (file_len >= 0 && cut)
			flags |= GTR_PY_FRAME_FILE_CUT;
		line = code_line(code, frame_offset(frame, co), &code_err);
		if (fn_len > 0 && source == GTR_PY_SOURCE_ATTACHED && !in_handler &&
		    is_bootstrap_inner(fn, fn_len, file, file_len))
			refresh_name(f); /* its own live frames only: not a freed one's */
		if (fn_len < 0 || file_len < 0) {
			flags |= GTR_PY_FRAME_CODE_UNREADABLE;
			fn_len = file_len = 0;
		}
		unsigned n = put_frame(out + used, room - used, line, fn, (unsigned)fn_len, file, (unsigned)file_len, flags);
		if (!n) {
			end = GTR_PY_STACK_ROOM;
			break;
		}
		used += n;
		frames++;
		f = next;
	}
	out[0] = gtr_py_stack_word(end, frames, source, end == GTR_PY_STACK_UNREADABLE ? err : 0);
	out[1] = tstate;
	errno = saved_errno;
	return used;
}

/* ---- thread names ------------------------------------------------------------- */

static bool is_str(uintptr_t addr, const char *want, int *err)
{
	char text[32];
	bool cut;
	size_t n = strlen(want);
	return n < sizeof text && read_str(addr, text, sizeof text, false, &cut, err) == (int)n && !cut &&
	       memcmp(text, want, n) == 0;
}

/* The value of key `name` in a keys object: *index its entry's index, and
 * its value for a combined table.  No hashing: a Thread has few keys. */
static bool keys_find(uintptr_t keys, const char *name, uint64_t *index, uint64_t *value, int *err)
{
	const struct py_layout *l = &py_layout;
	unsigned char head[40];
	uint64_t entries, nentries, entry_size = 24, key_at = 8;
	if (!peek(keys, head, sizeof head, err))
		return false;
	if (l->dk_log2) {
		unsigned log2_index_bytes = head[9], kind = head[10];
		if (log2_index_bytes > 40)
			return false;
		entries = keys + l->dk_indices + (UINT64_C(1) << log2_index_bytes);
		if (kind != 0) { /* unicode or split keys: {key, value} */
			entry_size = 16;
			key_at = 0;
		}
	} else {
		uint64_t size = word_at(head, l->dk_size);
		if (!size || size & (size - 1) || size > (UINT64_C(1) << 32))
			return false;
		entries = keys + l->dk_indices + size * (size <= 0xff ? 1 : size <= 0xffff ? 2 : 4);
	}
	nentries = word_at(head, l->dk_nentries);
	for (uint64_t i = 0; i < nentries && i < 64; i++) {
		uint64_t kv[2];
		if (!peek(entries + i * entry_size + key_at, kv, sizeof kv, err))
			return false;
		if (kv[0] && is_str(kv[0], name, err)) {
			*index = i;
			*value = kv[1];
			return true;
		}
	}
	return false;
}

/* A dict's value for `name`: combined, or split with its values array. */
static uintptr_t dict_get(uintptr_t dict, const char *name, int *err)
{
	const struct py_layout *l = &py_layout;
	uint64_t keys, values, index, value;
	if (!peek(dict + l->ma_keys, &keys, sizeof keys, err) || !peek(dict + l->ma_values, &values, sizeof values, err) ||
	    !keys_find(keys, name, &index, &value, err))
		return 0;
	if (values && !peek(values + l->values_array + 8 * index, &value, sizeof value, err))
		return 0;
	return value;
}

/* An instance's values array for `name`, with its type's shared keys. */
static uintptr_t values_get(uintptr_t type, uintptr_t values, const char *name, int *err)
{
	const struct py_layout *l = &py_layout;
	uint64_t keys, index, value;
	if (!peek(type + l->ht_cached_keys, &keys, sizeof keys, err) || !keys_find(keys, name, &index, &value, err) ||
	    !peek(values + l->values_array + 8 * index, &value, sizeof value, err))
		return 0;
	return value;
}

/* The instance attribute `name` of the object at obj (its own dictionary
 * or values only: no class attributes, no descriptors), or 0. */
static uintptr_t instance_attr(uintptr_t obj, const char *name, int *err)
{
	const struct py_layout *l = &py_layout;
	uint64_t type, flags, w;
	int64_t offset;
	if (!peek(obj + l->ob_type, &type, sizeof type, err) || !peek(type + l->tp_flags, &flags, sizeof flags, err))
		return 0;
	if (l->dict_kind == PY_DICT_AT_OFFSET || !(flags & l->flag_managed_dict)) {
		if (!peek(type + l->tp_dictoffset, &offset, sizeof offset, err) || offset <= 0 ||
		    !peek(obj + (uint64_t)offset, &w, sizeof w, err))
			return 0;
		return w ? dict_get(w, name, err) : 0;
	}
	switch (l->dict_kind) {
	case PY_DICT_MANAGED_311:
		if (!peek(obj + (uint64_t)(int64_t)l->managed_values, &w, sizeof w, err))
			return 0;
		if (w)
			return values_get(type, w, name, err);
		break;
	case PY_DICT_OR_VALUES_312:
		if (!peek(obj + (uint64_t)(int64_t)l->managed_values, &w, sizeof w, err))
			return 0;
		if (w & 1)
			return values_get(type, w + 1, name, err); /* tagged: values - 1 */
		return w ? dict_get(w, name, err) : 0;
	case PY_DICT_INLINE_313: {
		uint64_t size;
		unsigned char valid;
		if (!peek(obj + (uint64_t)(int64_t)l->managed_dict, &w, sizeof w, err))
			return 0;
		if (w)
			return dict_get(w, name, err);
		if (!(flags & l->flag_inline_values) || !peek(type + l->tp_basicsize, &size, sizeof size, err) ||
		    !peek(obj + size + l->values_valid, &valid, 1, err) || !valid)
			return 0;
		return values_get(type, obj + size, name, err);
	}
	default:
		return 0;
	}
	if (!peek(obj + (uint64_t)(int64_t)l->managed_dict, &w, sizeof w, err))
		return 0;
	return w ? dict_get(w, name, err) : 0;
}

unsigned pystack_thread_name(const void *start_arg, char *out, size_t size)
{
	const struct py_layout *l = &py_layout;
	int saved_errno = errno, err = 0, len = -1;
	uint64_t boot, method, thread;
	reads_begin();
	uintptr_t name;
	bool cut;
	/* pthread_create's arg: {func, arg}; arg: the bootstate; its func:
	 * the bound method Thread._bootstrap, whose __self__ is the Thread */
	if (l->usable && l->dict_kind != PY_DICT_NONE && type_method &&
	    peek((uintptr_t)start_arg + PY_CALLBACK_ARG, &boot, sizeof boot, &err) &&
	    peek(boot + PY_BOOTSTATE_FUNC, &method, sizeof method, &err) && is_a(method, type_method, &err) &&
	    peek(method + l->method_self, &thread, sizeof thread, &err) && (name = instance_attr(thread, "_name", &err)))
		len = read_str(name, out, size, false, &cut, &err);
	errno = saved_errno;
	return len > 0 ? (unsigned)len : 0;
}

/* ---- start-up ------------------------------------------------------------------ */

/* 3.13+: the offsets _Py_DebugOffsets gives, over the row's. */
static bool from_debug_offsets(struct py_layout *l, unsigned minor)
{
	const unsigned char *runtime = shim_python.runtime;
	const struct py_debug_offsets_row *d = NULL;
	for (size_t i = 0; i < sizeof py_debug_offsets_rows / sizeof *py_debug_offsets_rows; i++)
		if (minor >= py_debug_offsets_rows[i].first_minor && minor <= py_debug_offsets_rows[i].last_minor)
			d = &py_debug_offsets_rows[i];
	if (!d || memcmp(runtime, DEBUG_OFFSETS_COOKIE, 8) != 0 ||
	    (shim_python.runtime_size && d->str_ascii_size + 8 > shim_python.runtime_size))
		return false;
#define DEBUG_OFFSET(field, entry) l->field = (unsigned)word_at(runtime, d->entry)
	DEBUG_OFFSET(tstate_frame, tstate_current_frame);
	DEBUG_OFFSET(frame_back, frame_previous);
	DEBUG_OFFSET(frame_code, frame_executable);
	DEBUG_OFFSET(frame_instr, frame_instr_ptr);
	DEBUG_OFFSET(frame_localsplus, frame_localsplus);
	DEBUG_OFFSET(code_filename, code_filename);
	DEBUG_OFFSET(code_name, code_name);
	DEBUG_OFFSET(code_qualname, code_qualname);
	DEBUG_OFFSET(code_linetable, code_linetable);
	DEBUG_OFFSET(code_firstlineno, code_firstlineno);
	DEBUG_OFFSET(code_adaptive, code_adaptive);
	DEBUG_OFFSET(ob_type, ob_type);
	DEBUG_OFFSET(bytes_size, bytes_size);
	DEBUG_OFFSET(bytes_sval, bytes_sval);
	DEBUG_OFFSET(str_state, str_state);
	DEBUG_OFFSET(str_length, str_length);
	DEBUG_OFFSET(str_ascii_size, str_ascii_size);
#undef DEBUG_OFFSET
	l->frame_owner = (int)word_at(runtime, d->frame_owner);
	return true;
}

static unsigned max_of(unsigned a, unsigned b)
{
	return a > b ? a : b;
}

void pystack_prepare(void)
{
	struct py_layout *l = &py_layout;
	unsigned minor = shim_python.version_hex >> 16 & 0xff;
	bool ft = shim_python.build & GTR_BUILD_FREE_THREADED;
	memset(l, 0, sizeof *l);
	if (shim_python.version_hex >> 24 != 3)
		return;
	for (size_t i = 0; i < sizeof py_layout_rows / sizeof *py_layout_rows; i++)
		if (minor >= py_layout_rows[i].first_minor && minor <= py_layout_rows[i].last_minor &&
		    py_layout_rows[i].free_threaded == ft)
			*l = py_layout_rows[i];
	bool have_row = l->first_minor != 0;
	bool from_debug = minor >= DEBUG_OFFSETS_FIRST_MINOR && from_debug_offsets(l, minor);
	if (!have_row && !from_debug)
		return;
	if (!have_row) {
		l->dict_kind = PY_DICT_NONE; /* no row for its instance dictionaries */
		l->str_compact_size = l->str_ascii_size + 16; /* utf8_length, utf8 (3.12+) */
	}
	type_code = (uintptr_t)dlsym(RTLD_DEFAULT, "PyCode_Type");
	type_unicode = (uintptr_t)dlsym(RTLD_DEFAULT, "PyUnicode_Type");
	type_bytes = (uintptr_t)dlsym(RTLD_DEFAULT, "PyBytes_Type");
	type_method = (uintptr_t)dlsym(RTLD_DEFAULT, "PyMethod_Type");
	this_thread_state = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
	l->frame_read = 8 + max_of(max_of(l->frame_back, l->frame_code),
	                           max_of(l->frame_instr, l->frame_owner >= 0 ? (unsigned)l->frame_owner : 0));
	l->code_read = 8 + max_of(max_of(max_of(l->code_filename, l->code_name), max_of(l->code_qualname, l->code_linetable)),
	                          l->code_firstlineno);
	l->usable = type_code && type_unicode && type_bytes && l->frame_read <= PY_FRAME_READ_MAX &&
	            l->code_read <= PY_CODE_READ_MAX && l->str_compact_size <= PY_STR_HEADER_MAX &&
	            l->bytes_sval <= PY_BYTES_HEADER_MAX;
	shim_python.py_frames_readable = l->usable;
}
