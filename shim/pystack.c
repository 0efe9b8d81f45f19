/*
 * pystack.c: the Python stack and the Python thread name at the events that
 * explain a finding.
 *
 * Design note.  A Python developer reads a finding in Python terms: which
 * thread (threading.Thread.name), at which line of which function.  So
 * wherever the shim takes a native stack (stack.c and crash.c: rare events,
 * never an ordinary handoff) it also walks the calling thread's Python
 * frames and copies each frame's function name, file and line into the
 * trace (the code objects die with the process).  The frames are found
 * from the thread state a call attaches (PyEval_RestoreThread(tstate):
 * freed or not, those are the frames it resumes), else from the thread's
 * own: the attached one (PyThreadState_GetUnchecked, 3.8-3.11: the GIL
 * holder's, so only while this thread holds the GIL), else the one bound
 * to the thread (PyGILState_GetThisThreadState), else the last one it took
 * the GIL with (finalization unbinds them).  The trace says which, and
 * which thread state it was, so that a reader can tell a stack read from a
 * freed one.  Every read is pyobject.c's: process_vm_readv, never a fault,
 * and objects believed only after their type is checked.  Lines are
 * computed from the code's line table as PyCode_Addr2Line does (pyline.c).
 *
 * A walk needs about 5 KiB of buffers (a line table, a string, the
 * event's payload).  The shim runs inside arbitrary C-API calls, on
 * threads whose stacks may be small, so the buffers are one static
 * scratch area, taken with a mutex by an ordinary walk and with a trylock
 * by the crash handler (which records "busy" rather than wait: the
 * thread it interrupted may hold it).  Walks are rare; one waits for
 * another only when two threads hit such events at once.
 *
 * Thread names: when a thread that holds the GIL (free-threaded: any)
 * starts another, pthread_create's argument is CPython's {func, arg}
 * callback, arg its bootstate and bootstate->func the bound method
 * Thread._bootstrap, whose __self__ is the Thread: its `_name` attribute
 * is read from its instance dictionary, if it also has `_started` (a
 * Thread's, not any object's `_name`).  The child records it after its
 * start event.  A name given later (thread.name = ... in run()) is
 * recorded again at the thread's next Python stack that reaches
 * Thread._bootstrap_inner, whose first local is the Thread.
 *
 * What it cannot see: a rename with no Python stack taken after it (or
 * with one cut by py_stack_depth before the outermost frames), threads
 * not started by threading (a C thread's PyGILState_Ensure: no Thread),
 * the frames of a thread whose thread state it cannot find, and C
 * functions between Python frames (the native stack has them).
 * py_stack_depth=0 turns every one of these reads off.
 */
#include <dlfcn.h>
#include <errno.h>

#include "pyline.h"
#include "pyobject.h"
#include "shim.h"

/* The most of a line table read: a longer one gives line -1. */
#define PY_LINETABLE_MAX 2048
#define PY_BYTES_HEADER_MAX 64
#define PY_FRAME_READ_MAX 256
#define PY_CODE_READ_MAX 256

/* One walk's buffers (see the design note). */
static struct {
	uint64_t words[GTR_PY_STACK_MAX_WORDS]; /* the PY_STACK payload */
	unsigned char frame[PY_FRAME_READ_MAX], code[PY_CODE_READ_MAX];
	unsigned char table[PY_BYTES_HEADER_MAX + PY_LINETABLE_MAX];
	char function[GTR_PY_FUNCTION_MAX], file[GTR_PY_FILE_MAX];
	uint64_t name[GTR_PY_NAME_MAX / 8];
} scratch;
static pthread_mutex_t scratch_lock = PTHREAD_MUTEX_INITIALIZER;

static void *(*this_thread_state)(void);

/* ---- frames -------------------------------------------------------------------- */

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
	if (!py_peek(tstate + py_layout.tstate_frame, &f, sizeof f, err))
		return 0;
	if (py_layout.cframe_current >= 0 && f && !py_peek(f + (unsigned)py_layout.cframe_current, &f, sizeof f, err))
		return 0;
	return f;
}

/* No instruction offset: the frame's fields make no sense. */
#define NO_OFFSET INT32_MIN

/* The byte offset of the frame's current instruction in its code: -1 or
 * -2 for a frame not started (pyline gives co_firstlineno, as CPython). */
static int32_t frame_offset(const unsigned char *frame, uintptr_t code)
{
	const struct py_layout *l = &py_layout;
	int32_t lasti = (int32_t)py_u32_at(frame, l->frame_instr);
	switch (l->instr_kind) {
	case PY_INSTR_LASTI_BYTES:
		return lasti;
	case PY_INSTR_LASTI_UNITS:
		return lasti < 0 ? -1 : lasti > (1 << 28) ? NO_OFFSET : 2 * lasti;
	case PY_INSTR_POINTER: {
		/* 3.11/3.12 prev_instr is one code unit before the first
		 * instruction while the frame has not started */
		int64_t d = (int64_t)(py_word_at(frame, l->frame_instr) - (code + l->code_adaptive));
		return d < -2 || d > (1 << 30) ? NO_OFFSET : (int32_t)d;
	}
	}
	return NO_OFFSET;
}

/* The line of a code object's instruction at byte offset `offset`. */
static int code_line(const unsigned char *code, int32_t offset)
{
	const struct py_layout *l = &py_layout;
	int first = (int)py_u32_at(code, l->code_firstlineno), err = 0;
	ssize_t got = py_peek_some(py_word_at(code, l->code_linetable), scratch.table, sizeof scratch.table, &err);
	if (offset == NO_OFFSET || got < (ssize_t)l->bytes_sval || py_word_at(scratch.table, l->ob_type) != py_type_bytes)
		return -1;
	uint64_t len = py_word_at(scratch.table, l->bytes_size);
	if (len > (uint64_t)got - l->bytes_sval)
		return -1; /* longer than was read: a line not known */
	return pyline_from_table(l->linetable_format, scratch.table + l->bytes_sval, (size_t)len, first, offset);
}

/* ---- names -------------------------------------------------------------------- */

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
	recorder_emit_sized(GTR_EV_THREAD_PYNAME, (len + 7u) / 8u, name);
}

/* The name of the Thread at `thread`, into out: its length, 0 if it is no
 * Thread (no `_started` beside `_name`) or unreadable. */
static unsigned thread_name(uintptr_t thread, char *out, size_t size)
{
	static const char *const names[] = { "_name", "_started" };
	uintptr_t value[2];
	int err = 0, len = -1;
	bool cut;
	if (py_layout.dict_kind == PY_DICT_NONE)
		return 0;
	py_instance_attrs(thread, names, 2, value, &err);
	if (value[0] && value[1])
		len = py_read_str(value[0], out, size, false, &cut, &err);
	return len > 0 ? (unsigned)len : 0;
}

/* A threading thread's outermost frames are Thread._bootstrap_inner's,
 * whose first local is the Thread: its name now, recorded if it changed
 * since it was last recorded (thread.name = ... in run()). */
static void refresh_name(uintptr_t frame)
{
	uint64_t self;
	int err = 0;
	if (!shim_self.py_name_hash || !py_peek(frame + py_layout.frame_localsplus, &self, sizeof self, &err))
		return;
	memset(scratch.name, 0, sizeof scratch.name);
	unsigned len = thread_name(self, (char *)scratch.name, sizeof scratch.name);
	if (len && name_hash(scratch.name, len) != shim_self.py_name_hash)
		pystack_record_name(scratch.name, len);
}

static bool ends_with(const char *s, int len, const char *end)
{
	int n = (int)strlen(end);
	return len >= n && memcmp(s + len - n, end, (size_t)n) == 0;
}

/* Whether a frame is threading's Thread._bootstrap_inner (qualified on
 * 3.11+). */
static bool is_bootstrap_inner(const char *fn, int fn_len, const char *file, int file_len)
{
	return (fn_len == 16 || ends_with(fn, fn_len, "._bootstrap_inner")) && ends_with(fn, fn_len, "_bootstrap_inner") &&
	       ends_with(file, file_len, "/threading.py");
}

unsigned pystack_thread_name(const void *start_arg, char *out, size_t size)
{
	const struct py_layout *l = &py_layout;
	int saved_errno = errno, err = 0;
	uint64_t boot, method, type, thread;
	unsigned len = 0;
	py_reads_begin();
	/* pthread_create's arg: {func, arg}; arg: the bootstate; its func:
	 * the bound method Thread._bootstrap, whose __self__ is the Thread */
	if (l->usable && shim_options.py_stack_depth && py_type_method &&
	    py_peek((uintptr_t)start_arg + PY_CALLBACK_ARG, &boot, sizeof boot, &err) &&
	    py_peek(boot + PY_BOOTSTATE_FUNC, &method, sizeof method, &err) &&
	    py_peek(method + l->ob_type, &type, sizeof type, &err) && type == py_type_method &&
	    py_peek(method + l->method_self, &thread, sizeof thread, &err))
		len = thread_name(thread, out, size);
	errno = saved_errno;
	return len;
}

/* ---- the walk ------------------------------------------------------------------ */

/* A frame into the payload: its frame word and the names.  Returns the
 * words used, 0 if they do not fit in `room`. */
static unsigned put_frame(uint64_t *out, unsigned room, int line, unsigned fn_len, unsigned file_len, unsigned flags)
{
	unsigned words = 1u + (fn_len + file_len + 7u) / 8u;
	if (words > room)
		return 0;
	out[0] = gtr_py_frame_word(line, fn_len, file_len, flags);
	memset(out + 1, 0, (words - 1u) * 8u);
	memcpy((char *)(out + 1), scratch.function, fn_len);
	memcpy((char *)(out + 1) + fn_len, scratch.file, file_len);
	return words;
}

/* One frame's names and line into the payload at `used`: its words, 0 if
 * they do not fit.  The code object was read into scratch.code. */
static unsigned record_frame(unsigned used, uintptr_t f, uintptr_t co, unsigned source, bool in_handler)
{
	const struct py_layout *l = &py_layout;
	const unsigned char *code = scratch.code;
	unsigned flags = 0;
	bool cut;
	int err = 0, fn_len, file_len;
	uintptr_t qualname = l->code_qualname ? py_word_at(code, l->code_qualname) : 0;
	fn_len = qualname ? py_read_str(qualname, scratch.function, sizeof scratch.function, false, &cut, &err) : -1;
	if (fn_len >= 0)
		flags |= GTR_PY_FRAME_QUALIFIED;
	else
		fn_len = py_read_str(py_word_at(code, l->code_name), scratch.function, sizeof scratch.function, false, &cut,
		                     &err);
	if (fn_len >= 0 && cut)
		flags |= GTR_PY_FRAME_FUNCTION_CUT;
	file_len = py_read_str(py_word_at(code, l->code_filename), scratch.file, sizeof scratch.file, true, &cut, &err);
	if (file_len >= 0 && cut)
		flags |= GTR_PY_FRAME_FILE_CUT;
	int line = code_line(code, frame_offset(scratch.frame, co));
	if (fn_len < 0 || file_len < 0) {
		flags |= GTR_PY_FRAME_CODE_UNREADABLE;
		fn_len = file_len = 0;
	} else if (source == GTR_PY_SOURCE_ATTACHED && !in_handler &&
	           is_bootstrap_inner(scratch.function, fn_len, scratch.file, file_len)) {
		refresh_name(f); /* its own live frames only, never a freed one's */
	}
	return put_frame(scratch.words + used, GTR_PY_STACK_MAX_WORDS - used, line, (unsigned)fn_len,
	                 (unsigned)file_len, flags);
}

/* Walk into scratch.words; the words used. */
static unsigned walk(uintptr_t tstate, bool in_handler)
{
	const struct py_layout *l = &py_layout;
	unsigned depth = shim_options.py_stack_depth, used = 2, frames = 0, steps = 0;
	unsigned end = GTR_PY_STACK_COMPLETE;
	unsigned source = tstate ? GTR_PY_SOURCE_ARGUMENT : GTR_PY_SOURCE_NONE;
	int err = 0;
	uintptr_t f = 0;
	if (!l->usable)
		end = GTR_PY_STACK_NO_LAYOUT;
	else if (!tstate && !(tstate = own_thread_state(&source)))
		end = GTR_PY_STACK_NO_THREAD_STATE;
	else if (!(f = first_frame(tstate, &err)) && err)
		end = GTR_PY_STACK_UNREADABLE;
	for (uintptr_t prev = 0; end == GTR_PY_STACK_COMPLETE && f;) {
		if (!py_peek(f, scratch.frame, l->frame_read, &err)) {
			end = GTR_PY_STACK_UNREADABLE;
			break;
		}
		uintptr_t next = py_word_at(scratch.frame, l->frame_back), co = py_word_at(scratch.frame, l->frame_code);
		if (next == f || next == prev || ++steps > 4 * depth + 16) {
			end = GTR_PY_STACK_BAD_FRAME; /* a loop: a torn chain */
			break;
		}
		/* 3.12+: the C stack's entry frames; 3.13+: f_executable need
		 * not be code, so every frame's code is checked by its type */
		bool entry = l->frame_owner >= 0 && scratch.frame[l->frame_owner] == l->owner_cstack;
		int code_err = 0;
		if (!entry && py_peek(co, scratch.code, l->code_read, &code_err) &&
		    py_word_at(scratch.code, l->ob_type) == py_type_code) {
			if (frames == depth) {
				end = GTR_PY_STACK_DEPTH;
				break;
			}
			unsigned n = record_frame(used, f, co, source, in_handler);
			if (!n) {
				end = GTR_PY_STACK_ROOM;
				break;
			}
			used += n;
			frames++;
		}
		prev = f;
		f = next;
	}
	scratch.words[0] = gtr_py_stack_word(end, frames, source, end == GTR_PY_STACK_UNREADABLE ? err : 0);
	scratch.words[1] = tstate;
	return used;
}

unsigned pystack_capture_begin(uintptr_t tstate, bool in_handler, const uint64_t **words)
{
	static SHIM_TLS uint64_t busy[2];
	if (!shim_options.py_stack_depth)
		return 0;
	int saved_errno = errno;
	if (in_handler ? shim_real.mutex_trylock(&scratch_lock) != 0 : shim_real.mutex_lock(&scratch_lock) != 0) {
		busy[0] = gtr_py_stack_word(GTR_PY_STACK_BUSY, 0, GTR_PY_SOURCE_NONE, 0);
		busy[1] = 0;
		*words = busy;
		errno = saved_errno;
		return 2;
	}
	py_reads_begin();
	unsigned used = walk(tstate, in_handler);
	*words = scratch.words;
	errno = saved_errno;
	return used;
}

void pystack_capture_end(const uint64_t *words)
{
	if (words == scratch.words)
		shim_real.mutex_unlock(&scratch_lock);
}

void pystack_after_fork_child(void)
{
	/* the parent thread that held it does not exist here */
	pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;
	memcpy(&scratch_lock, &fresh, sizeof fresh);
}

void pystack_prepare(void)
{
	pyobject_prepare();
	struct py_layout *l = &py_layout;
	this_thread_state = (void *(*)(void))dlsym(RTLD_DEFAULT, "PyGILState_GetThisThreadState");
	if (l->frame_read > PY_FRAME_READ_MAX || l->code_read > PY_CODE_READ_MAX || l->bytes_sval > PY_BYTES_HEADER_MAX)
		l->usable = false;
	shim_python.py_frames_readable = l->usable;
}
