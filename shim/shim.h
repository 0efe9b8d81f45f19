/*
 * shim.h: declarations shared by the files of libgiltrace.so.
 *
 * The shim is split by concern:
 *   init.c           lifecycle state, constructor/destructor, interpreter probe
 *   options.c        GILTRACE_OPTIONS parsing
 *   trace-file.c     the trace file: creation, permissions, identity, space
 *   recorder.c       the trace: mapping, growth, chunks, event writing
 *   gil-model.c      recognising GIL objects and deriving GIL transitions
 *   wrap-pthread.c   pthread mutex/cond interposers (the primary signal)
 *   wrap-sem.c       sem_* interposers: PyThread locks, who owns each
 *   lock-table.c     the lock-owner table those interposers keep
 *   wrap-lifecycle.c threads, fork, exit, pause, dlopen interposers
 *   wrap-capi.c      CPython C-API wrappers (PyEval_*, PyThreadState_*, ...)
 *   got-patch.c      routing loaded objects' C-API imports to those wrappers
 *   wrap-free.c      free(): when a known thread state dies
 *   wrap-alloc.c     malloc/calloc: when a freed thread state's block is reused
 *   tstate-table.c   the thread states the shim knows
 *   stack.c          native stacks at the events that explain findings
 *   pystack.c        Python stacks there, and Python thread names
 *   pyobject.c       reading CPython objects without trusting them
 *   pyline.c         a code object's line table: which line an offset is
 *   exit-check.c     findings on stderr when the process ends
 *   crash.c          fatal signals: recorded, then the program's handler
 *   provoke.c        provocations: exit delays, poisoned frees, jitter
 *   test-mark.c      giltrace_test_mark(): the program marks its tests
 *   signal-safe.c    async-signal-safe output helpers
 *   cpython-layout.h the CPython struct layouts relied on, one table each
 */
#ifndef GILTRACE_SHIM_H
#define GILTRACE_SHIM_H

#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "trace-format.h"

#define SHIM_EXPORT __attribute__((visibility("default")))
#define SHIM_TLS __thread __attribute__((tls_model("initial-exec")))
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* ---- lifecycle (init.c) ------------------------------------------------ */

enum shim_state {
	SHIM_UNINIT = 0,  /* before the constructor finished resolving symbols */
	SHIM_DORMANT,     /* resolved; no GIL seen: everything passes through */
	SHIM_ACTIVE,      /* a GIL was recognised and the trace file is open */
	SHIM_STOPPED,     /* after exit, or after trouble: pass through only */
};

/* The one lifecycle word, read on the way into every recording path. */
extern volatile int shim_state;

/* What the shim learned about the interpreter; valid once ACTIVE. */
struct shim_python {
	void *runtime;             /* &_PyRuntime */
	size_t runtime_size;       /* st_size of _PyRuntime, 0 if unknown */
	uint32_t version_hex;      /* PY_VERSION_HEX */
	uint32_t build;            /* enum gtr_py_build */
	long finalizing_offset;    /* offset of the finalizing tstate in _PyRuntime, -1 */
	/* where a GIL's locked and last_holder fields are from its start: the
	 * layout table's, or (3.13) the interpreter's _Py_DebugOffsets' */
	unsigned long gil_off_locked, gil_off_last_holder;
	bool gil_offsets_from_debug; /* _Py_DebugOffsets gave them */
	bool gil_offsets_disagree;   /* ... and the table said otherwise */
	unsigned long tstate_off_interp; /* a thread state's interpreter: the table's,
	                                    or (3.13+) _Py_DebugOffsets' */
	int (*is_finalizing)(void); /* _Py_IsFinalizing or Py_IsFinalizing */
	/* the calling thread's thread state without a fatal error when none
	 * (PyThreadState_GetUnchecked, 3.8-3.12: _PyThreadState_UncheckedGet),
	 * and the main interpreter (PyInterpreterState_Main): for gh-59956 */
	void *(*tstate_unchecked)(void);
	void *(*main_interp)(void);
	bool py_frames_readable;   /* pystack.c has a layout of its frames */
	char version[128];
};
extern struct shim_python shim_python;

/* Probe the process for a CPython runtime; true if _PyRuntime exists. */
bool shim_probe_python(void);
/* Activate tracing (open the trace file); called once, with the GIL
 * recognition lock held.  Returns false and stays dormant on failure. */
bool shim_activate(void);
/* End tracing for the whole process: the calling thread records that the
 * process exits, then the trace is closed and checked.  Used by the
 * destructor; does nothing in a vfork child. */
void shim_finish(void);
/* async-signal-safe: the same with stores only, no check; for _exit(). */
void shim_finish_signal_safe(void);
/* async-signal-safe: tracing ends before exec (a fork child's trace is
 * removed); if exec fails the process goes on untraced. */
void shim_before_exec(void);
/* Resolve the real functions if the constructor has not run yet. */
void shim_resolve_early(void);

/* ---- options (options.c) ----------------------------------------------- */

enum shim_mode { SHIM_MODE_FULL = 0, SHIM_MODE_RING };

/* What the at-exit check prints (option check_severity=). */
enum check_severity { CHECK_SEVERITY_ERROR = 0, CHECK_SEVERITY_NOTE };

struct shim_options {
	char output[4096];         /* path template, %p = pid */
	enum shim_mode mode;
	unsigned ring_size_mib;    /* ring mode: MiB kept per thread */
	unsigned verbose;          /* 0 quiet, 1 start/end lines on stderr */
	unsigned check;            /* 1: report findings at exit */
	enum check_severity check_severity; /* the least severe finding reported */
	unsigned check_timeout;    /* seconds the at-exit check may take */
	unsigned exitcode;         /* exit status of a process with error findings,
	                              0: its own (option exitcode=) */
	char log_path[4096];       /* at-exit report file (%p = pid), "" = stderr */
	char giltrace[4096];       /* the giltrace binary for `check`, or "" */
	char suppressions[4096];   /* check's --suppressions, absolute, or "" */
	unsigned stacks;           /* enum stack_events: which events get a stack */
	unsigned stack_depth;      /* frames per stack, 1..GTR_STACK_MAX_FRAMES */
	unsigned py_stack_depth;   /* Python frames per stack, 0 none */
	/* provoke= (provoke.c): enum gtr_provoke, and the parameters of those
	 * asked for */
	unsigned provoke;
	unsigned provoke_jitter_us;        /* the longest jitter sleep */
	uint64_t provoke_exit_delay_ns;
	uint64_t provoke_after_free_delay_ns;
	uint64_t provoke_jitter_seed;
};
extern struct shim_options shim_options;

/* Parse GILTRACE_OPTIONS into shim_options; warnings go to stderr. */
void shim_options_parse(const char *text);
/* An output template for process `pid`: %p is the pid, %% a %.  Returns
 * whether it held a %p.  async-signal-safe. */
bool shim_expand_template(char *out, size_t size, const char *tmpl, pid_t pid);
/* log_path= for this process: %p expanded, else ".PID" appended (the
 * sanitizers' log_path); `size` at least 24 bytes more than log_path. */
void shim_expand_log_path(char *out, size_t size);

/* ---- per-thread state ---------------------------------------------------- */

/* Everything the shim keeps per thread.  Zero-initialised TLS means "not
 * seen yet"; GIL indices are stored plus one so that 0 means "none". */
struct shim_thread {
	struct gtr_chunk_header *chunk; /* chunk being written, or NULL */
	uint32_t used;             /* bytes committed in chunk (local copy) */
	uint32_t serial;           /* thread serial in this process, 0 = unassigned */
	int32_t tid;
	uint32_t next_seq;         /* sequence number of the next chunk */
	uint32_t generation;       /* recorder generation the chunk belongs to */
	uint32_t ring_first;       /* ring mode: first chunk index of own ring */
	uint64_t last_clock;       /* clock of the last event written */
	uint8_t gil_held;          /* index+1 of the GIL this thread holds */
	uint8_t gil_taking;        /* index+1 of the GIL it is taking */
	uint8_t in_shim;           /* re-entrancy guard */
	uint8_t lost;              /* recording failed for this thread */
	uintptr_t known_tstate;    /* the last thread state it taught the table */
	uintptr_t creator_interp;  /* the subinterpreter its creator ran in, 0 none
	                              or the main one (gh-59956, wrap-capi.c) */
	unsigned known_generation; /* tstate_table_generation at that time */
	/* create_gil signature detector: the last four init calls */
	uintptr_t init_addr[4];
	uint8_t init_is_cond[4];
	uint8_t init_count;
	const sem_t *own_sem;      /* the last semaphore it made with value 0: its
	                              parking-lot semaphore (wrap-sem.c) */
	uint64_t py_name_hash;     /* of the Python name last recorded (pystack.c) */
};
extern SHIM_TLS struct shim_thread shim_self;

/* Enter the shim on this thread: false if tracing is off or the thread is
 * already inside the shim (a signal handler, or the shim's own libc calls). */
static inline bool shim_enter(void)
{
	if (shim_state != SHIM_ACTIVE || shim_self.in_shim)
		return false;
	shim_self.in_shim = 1;
	return true;
}

static inline void shim_leave(void)
{
	shim_self.in_shim = 0;
}

/* ---- the trace file (trace-file.c) -------------------------------------- */

/* The trace file, known by name and identity; no descriptor is kept. */
struct trace_file {
	char path[4096];           /* absolute */
	dev_t dev;                 /* identity of the file created */
	ino_t ino;
};

/* Create this process's trace from the output template (%p = pid): never
 * an existing file, mode 0600, missing folders 0700.  Returns a descriptor
 * (close-on-exec) for the caller to close, or -1 after one error line. */
int trace_file_create(struct trace_file *f, const char *tmpl, pid_t pid);
/* Open the trace again (open(2) flags), only if its name still leads to
 * the file created; -1 with errno (ESTALE: the name leads elsewhere). */
int trace_file_reopen(const struct trace_file *f, int flags);
/* Remove the trace, only if its name still leads to the file created.
 * async-signal-safe. */
void trace_file_remove(const struct trace_file *f);
/* Give [offset, offset+len) real blocks, never a sparse extension: 0 or an
 * errno (ENOSPC, EFBIG: beyond RLIMIT_FSIZE). */
int trace_file_preallocate(int fd, off_t offset, off_t len);

/* ---- recorder (recorder.c) --------------------------------------------- */

/* Open the trace file for this process; false if it could not be made. */
bool recorder_open(void);
/* Write the end-of-run clock pair, mark the trace closed, trim the file. */
void recorder_close(void);
/* async-signal-safe: the end clock pair and the closed mark, stores only
 * (no lock, no trimming); for _exit(). */
void recorder_close_signal_safe(void);
/* async-signal-safe: before exec, close the trace (remove it if this is a
 * fork child's). */
void recorder_close_before_exec(void);
/* Whether recording stopped before the end (out of space, or the trace's
 * name led to another file); one warning said so then. */
bool recorder_stopped_early(void);
/* A read-only descriptor of this process's trace, if its name still leads
 * to it; -1 otherwise. */
int recorder_reopen_for_reading(void);
/* In a fork child: drop the parent's mapping; the child's own trace opens
 * at its first event (never, if it execs at once). */
void recorder_forget_parent_in_child(void);
/* Append one event for the calling thread.  Must be called inside
 * shim_enter()/shim_leave().  Drops the event if no space can be had. */
void recorder_emit(unsigned type, unsigned arg, const uint64_t *payload);
/* An event of a type sized by its arg (THREAD_PYNAME): `words` payload
 * words, the count in its arg. */
void recorder_emit_sized(unsigned type, unsigned words, const uint64_t *payload);
/* async-signal-safe: the same, only if the thread's current chunk has room
 * (never takes the allocation lock); false if the event was not written. */
bool recorder_emit_signal_safe(unsigned type, unsigned arg, const uint64_t *payload);
/* Set a flag (enum gtr_file_flag) in the open trace's header.
 * async-signal-safe. */
void recorder_set_flag(uint32_t flag);
/* For a crash handler (crash.c): a crash event (arg: gtr_crash_arg), its
 * stack and its Python stack (py_words 0: none); a thread without room gets a chunk only if the allocation lock is
 * free and no growth is needed.  Works after the trace was closed too, in
 * the thread's own chunk.  async-signal-safe but for a trylock (recorder.c
 * says why that is safe).  False if the event was not written. */
bool recorder_emit_crash_signal_safe(unsigned arg, const uint64_t *payload, const uint64_t *frames, unsigned nframes,
                                     const uint64_t *py, unsigned py_words);
/* The same, stamped no earlier than `now`; returns the stamp written. */
uint64_t recorder_emit_at(unsigned type, unsigned arg, const uint64_t *payload, uint64_t now);
/* recorder_emit_at() followed by a stack and a Python stack (stack.c);
 * py_words 0: none. */
uint64_t recorder_emit_with_stack_at(unsigned type, unsigned arg, const uint64_t *payload, const uint64_t *frames,
                                     unsigned nframes, const uint64_t *py, unsigned py_words, uint64_t now);
/* The calling thread ends (after its exit event): in ring mode its block
 * of chunks goes to threads that start later, and it records nothing
 * more.  Inside shim_enter(). */
void recorder_thread_ends(void);
/* Append a metadata record (module, GIL) to the log in the header area. */
void recorder_add_meta(const void *record, size_t size);
/* A label record (a test's id, `len` bytes, not terminated), written in
 * place, only if keep_free bytes of the log stay free after it (for the
 * records that matter more: modules); false when it was not added. */
bool recorder_add_label(uint32_t id, const char *text, size_t len, size_t keep_free);
/* Record newly loaded objects (path, address, build-id); idempotent. */
void recorder_note_modules(void);
/* Record in the header how C-API calls reach the wrappers: build flags to
 * add (GTR_BUILD_PLT_ROUTED) and the number of GOT slots routed so far. */
void recorder_note_capi_routing(uint32_t build_flags, uint32_t got_slots);
/* False in a vfork child, which shares the parent's memory. */
void recorder_note_finalizing(bool began);
bool recorder_owned_by_this_process(void);
/* The path the trace is written to, valid once ACTIVE. */
const char *recorder_path(void);
/* Bytes of the trace in use (header, metadata, handed-out chunks). */
uint64_t recorder_bytes_used(void);

/* Current clock: TSC ticks when the TSC is usable, else monotonic ns. */
uint64_t shim_clock_now(void);

/* ---- GIL model (gil-model.c) ------------------------------------------- */

/* Known GIL objects.  gil_span is 0 until the first GIL is recognised, so
 * the fast path `addr - gil_lo >= gil_span` sends everything to libc. */
extern uintptr_t gil_lo, gil_span;

static inline bool gil_maybe(const void *addr)
{
	return unlikely((uintptr_t)addr - gil_lo < gil_span);
}

void gil_model_on_init(const void *addr, bool is_cond);
/* True if the caller must call provoke_before_gil_take() before it locks
 * M: a take of a GIL begins and provoke=jitter wants that moment. */
bool gil_model_on_lock(const pthread_mutex_t *m);
/* True if the caller must call provoke_after_gil_release() once the
 * mutex is unlocked: a GIL was released and provoke= wants that moment. */
bool gil_model_on_unlock(const pthread_mutex_t *m);
void gil_model_on_timedwait_begin(const pthread_cond_t *c, unsigned long *switch_before);
void gil_model_on_timedwait_end(const pthread_cond_t *c, int rc, unsigned long switch_before);
void gil_model_on_wait(const pthread_cond_t *c, bool begin);
void gil_model_on_signal(const pthread_cond_t *c);
/* Record a finalizing flip if the runtime's flag changed since last seen.
 * Must be called inside shim_enter(). */
void gil_model_check_finalizing(void);
/* Free-threaded builds: record each GIL's `enabled` count if it changed. */
void gil_model_check_enabled(void);
/* The finalizing flag as last sampled by gil_model_check_finalizing(). */
bool gil_model_finalizing(void);
/* After fork in the child: note the GIL the forking thread holds. */
void gil_model_after_fork_child(void);
/* The child's trace was just opened (recorder): announce that GIL first.
 * Inside shim_enter(). */
void gil_model_child_trace_opened(void);
/* Re-emit the GIL table into a fresh trace (fork child). */
void gil_model_write_meta(void);

/* ---- thread states (tstate-table.c) ------------------------------------- */

/* The thread state whose block (or debug-allocator block) starts at
 * `block`, or 0.  Lock-free; a few nanoseconds when it is none. */
uintptr_t tstate_table_find(const void *block);
/* Add a thread state (idempotent); remove one when it is freed. */
void tstate_table_learn(uintptr_t tstate);
void tstate_table_forget(uintptr_t tstate);
/* In a fork child: the parent's writer may have been interrupted. */
void tstate_table_reset_in_child(void);
extern unsigned tstate_table_generation;

/* Learn a thread state seen by this thread, cheaply when it is the same as
 * last time and nothing was forgotten since. */
static inline void shim_know_tstate(uintptr_t tstate)
{
	unsigned gen = __atomic_load_n(&tstate_table_generation, __ATOMIC_RELAXED);
	if (tstate == shim_self.known_tstate && gen == shim_self.known_generation)
		return;
	tstate_table_learn(tstate);
	shim_self.known_tstate = tstate;
	shim_self.known_generation = gen;
}

/* Resolve the real free() (wrap-free.c); idempotent. */
void free_resolve(void);

/* ---- C-API wrappers (wrap-capi.c, got-patch.c) -------------------------- */

/* The wrapper of each entry point, by enum gtr_capi (NULL for NONE). */
extern void *const capi_wrappers[GTR_CAPI_COUNT];
/* Resolve the interpreter's own definitions of the wrapped functions that
 * every version has (PEP 788's only when an object imports them). */
void capi_resolve(void);
/* The interpreter's definition of `fn`, resolving it if needed; or NULL. */
void *capi_real(enum gtr_capi fn);
/* The interpreter of the calling thread's thread state, and the main one;
 * false if either is unknown.  Only for a thread that holds a GIL: before
 * 3.12 the "current" thread state is the GIL holder's. */
bool capi_current_interp(uintptr_t *interp, uintptr_t *main_interp);
/* Route the C-API imports of every loaded object not yet seen to the
 * wrappers; idempotent, called at activation and after each dlopen. */
void got_patch_loaded_objects(void);

/* ---- native stacks (stack.c) --------------------------------------------- */

/* The events that may get a stack (option stacks=). */
enum stack_events {
	STACKS_SUSPECT_CAPI = 1u << 0, /* C-API calls while finalizing, or with a
	                                  thread state not known to be alive */
	STACKS_ALL_CAPI = 1u << 1,     /* every C-API call */
	STACKS_FREE = 1u << 2,         /* thread-state frees */
	STACKS_FINALIZE = 1u << 3,     /* Py_FinalizeEx entry, the finalizing flip */
	STACKS_EXIT = 1u << 4,         /* thread exits and parks while finalizing
	                                  or holding the GIL */
};
#define STACKS_DEFAULT (STACKS_SUSPECT_CAPI | STACKS_FREE | STACKS_FINALIZE | STACKS_EXIT)

/* At activation: find the shim's own code, load the unwinder. */
void stack_prepare(void);
/* Whether any of `events` (enum stack_events) get a stack. */
bool stack_wanted(unsigned events);
/* recorder_emit(), followed by the calling thread's stack when
 * `with_stack`, stamped with the time of the call, not of the end of the
 * (slower) unwinding.  Inside shim_enter(). */
void stack_emit_if(bool with_stack, unsigned type, unsigned arg, const uint64_t *payload);
/* An event and its stack, stamped no earlier than `now`. */
void stack_emit_at(unsigned type, unsigned arg, const uint64_t *payload, uint64_t now);

/* ---- Python stacks and thread names (pystack.c) ------------------------- */

/* At activation: the frame layout of this interpreter, the type objects
 * (sets shim_python.py_frames_readable). */
void pystack_prepare(void);
/* The calling thread's Python stack as a PY_STACK payload (*words, the
 * count returned; 0 when Python stacks are off), read from `tstate` (the
 * thread state a call attaches), else from the thread's own.  The words
 * stay valid until pystack_capture_end(*words), which every capture
 * needs.  Inside shim_enter(); keeps errno.  `in_handler`: from a signal
 * handler, async-signal-safe (it waits for no other walk and records no
 * renamed thread). */
unsigned pystack_capture_begin(uintptr_t tstate, bool in_handler, const uint64_t **words);
void pystack_capture_end(const uint64_t *words);
/* In a fork child: no walk of the parent's other threads is under way. */
void pystack_after_fork_child(void);
/* At pthread_create by a thread holding the GIL: the name of the
 * threading.Thread being started (pthread_create's argument is CPython's
 * start callback), as UTF-8 in out (not terminated); its length, 0 if
 * this is no Thread's start.  Keeps errno. */
unsigned pystack_thread_name(const void *start_arg, char *out, size_t size);
/* The calling thread's Python name (THREAD_PYNAME) as its start recorded
 * it; remembered so that a later walk records a new one only when it
 * changed.  Inside shim_enter(). */
void pystack_record_name(const uint64_t *name, unsigned len);

/* ---- test marks (test-mark.c) ------------------------------------------ */

/* At activation: the test this process was started during (GILTRACE_TEST
 * in its environment, set by the pytest plugin), marked as begun. */
void test_mark_inherited(void);
/* A fork child's trace was just opened: the test its parent was running,
 * marked as begun in it.  Inside shim_enter(). */
void test_mark_child_trace_opened(void);

/* ---- findings at exit (exit-check.c) ------------------------------------ */

/* Run `giltrace check` on the closed trace; its report goes to stderr or
 * to log_path=.  From the destructor only.  Returns check's exit status
 * (1: error findings), or -1 when it did not run to its end. */
int exit_check_run(void);

/* ---- fatal signals (crash.c) ---------------------------------------------- */

/* At activation: take the crash signals (what was installed becomes the
 * program's) and give the calling thread an alternate signal stack. */
void crash_install(void);
/* A thread begins (the pthread_create trampoline): its alternate stack. */
void crash_thread_begins(void);
/* A thread ends (trampoline, pthread_exit): its alternate stack goes. */
void crash_thread_ends(void);
/* async-signal-safe: before exec, the kernel gets the program's
 * dispositions back (what exec keeps: SIG_IGN). */
void crash_before_exec(void);

/* ---- provocations (provoke.c) ------------------------------------------ */

/* Whether provoke= asked for any of `what` (enum gtr_provoke): the one
 * test on the hot paths. */
static inline bool provoking(unsigned what)
{
	return unlikely(shim_options.provoke & what);
}

/* jitter without seed=: a random one (options.c, before the header). */
void provoke_choose_seed(void);
/* The provocations into a new trace's header (recorder.c). */
void provoke_write_header(struct gtr_file_header *h);
/* Py_FinalizeEx or Py_Finalize returned (wrap-capi.c): exit-delay. */
void provoke_after_finalize(void);
/* The process exits (shim_finish, before its exit event): the delays not
 * taken yet, if the runtime was seen finalizing. */
void provoke_at_exit(void);
/* A known thread state was freed by this thread (wrap-free.c), outside
 * shim_enter(): jitter, and exit-delay-after-free becomes owed. */
void provoke_tstate_freed(void);
/* This thread released a GIL and unlocked its mutex (wrap-pthread.c):
 * an owed exit-delay-after-free, jitter.  errno kept. */
void provoke_after_gil_release(void);
/* This thread is about to lock a GIL's mutex to take it: jitter. */
void provoke_before_gil_take(void);
/* poison: fill the freed block of `size` bytes and keep it; returns the
 * oldest block kept, to be freed for real, when the quarantine is full. */
void *provoke_quarantine(void *block, size_t size);
/* In a fork child: a quarantine another thread was changing is forgotten. */
void provoke_reset_in_child(void);

/* ---- PyThread locks: who owns each (lock-table.c) ------------------------ */

/* A lock-owner slot: the lock's address (LOCK_KEY_EMPTY never used,
 * LOCK_KEY_GONE destroyed) and the tid of the thread that owns it, 0 none. */
struct lock_slot {
	uintptr_t key;
	int32_t owner;
	uint32_t reserved;
};
#define LOCK_KEY_EMPTY ((uintptr_t)0)
#define LOCK_KEY_GONE ((uintptr_t)1)

/* Slots ever claimed: 0 in a process that made no lock while tracing, so
 * that the sem_* wrappers do nothing more than one load. */
extern unsigned lock_table_used;

/* The slot of `lock`, or NULL if it is not tracked.  Lock-free,
 * async-signal-safe. */
struct lock_slot *lock_table_find(const void *lock);
/* Track a lock just made (sem_init of value 1, not shared); when the table
 * has no room near its home, the trace's header says so and it is not. */
void lock_table_add(const void *lock);
/* The lock is destroyed: forget it. */
void lock_table_remove(const void *lock);
/* This thread's kernel tid, cached (async-signal-safe after its first
 * call on the thread; the fork child's wrapper resets it). */
int32_t lock_table_self(void);
/* After fork in the child: the forking thread has a new tid; what it owned
 * is its under the new one. */
void lock_table_after_fork_child(void);
/* One GTR_EV_LOCK_HELD (arg: enum gtr_lock_held_at) per lock the calling
 * thread owns.  Inside shim_enter(). */
void lock_table_report_held(unsigned at);
/* The same for a crash handler: only into room the chunk has.
 * async-signal-safe. */
void lock_table_report_held_signal_safe(void);

/* ---- real functions (resolved in init.c) ------------------------------- */

struct shim_real {
	int (*mutex_init)(pthread_mutex_t *, const pthread_mutexattr_t *);
	int (*mutex_lock)(pthread_mutex_t *);
	int (*mutex_trylock)(pthread_mutex_t *);
	int (*mutex_unlock)(pthread_mutex_t *);
	int (*cond_init)(pthread_cond_t *, const pthread_condattr_t *);
	int (*cond_wait)(pthread_cond_t *, pthread_mutex_t *);
	int (*cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);
	int (*cond_signal)(pthread_cond_t *);
	int (*cond_broadcast)(pthread_cond_t *);
	int (*create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
	void (*exit)(void *) __attribute__((noreturn));
	int (*setname_np)(pthread_t, const char *);
	pid_t (*fork)(void);
	int (*execve)(const char *, char *const[], char *const[]);
	int (*execv)(const char *, char *const[]);
	int (*execvp)(const char *, char *const[]);
	int (*execvpe)(const char *, char *const[], char *const[]);
	int (*fexecve)(int, char *const[], char *const[]);
	void (*_exit)(int) __attribute__((noreturn));
	void (*_Exit)(int) __attribute__((noreturn));
	int (*pause)(void);
	void *(*dlopen)(const char *, int);
	int (*sigaction)(int, const struct sigaction *, struct sigaction *);
	int (*sigaltstack)(const stack_t *, stack_t *);
	sighandler_t (*signal)(int, sighandler_t);
	sighandler_t (*sysv_signal)(int, sighandler_t);
	int (*sem_init)(sem_t *, int, unsigned);
	int (*sem_destroy)(sem_t *);
	int (*sem_wait)(sem_t *);
	int (*sem_trywait)(sem_t *);
	int (*sem_timedwait)(sem_t *, const struct timespec *);
	int (*sem_clockwait)(sem_t *, clockid_t, const struct timespec *);
	int (*sem_post)(sem_t *);
};
extern struct shim_real shim_real;

/* First statement of an interposer: resolve the real functions if it runs
 * before the constructor (another library's constructor came first). */
#define RESOLVED(fn)                                                                               \
	do {                                                                                       \
		if (unlikely(!shim_real.fn))                                                       \
			shim_resolve_early();                                                      \
	} while (0)

/* ---- async-signal-safe output (signal-safe.c) -------------------------- */

/* Write "giltrace: <level>: " + the NUL-terminated parts + "\n" to fd 2.
 * async-signal-safe. */
void shim_say(const char *level, const char *const *parts, size_t n);
/* Format v in decimal into buf (at least 21 bytes); returns buf. */
char *shim_format_u64(char *buf, uint64_t v);

/* ---- free()'s fast path, thread-state reuse (tstate-table.c, wrap-alloc.c) - */

/* Slots of the thread-state table (a power of two), and the count of keys
 * whose home is each slot: zero for the slot of almost every block freed. */
#define TSTATE_KEYS 4096u
extern uint16_t tstate_home_count[TSTATE_KEYS];

static inline unsigned tstate_slot_of(uintptr_t key)
{
	return (unsigned)(((uint64_t)key >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 52) & (TSTATE_KEYS - 1);
}

/* Lock-free: false if `block` is surely not a known thread state's block
 * (then tstate_table_find() would return 0). */
static inline bool tstate_table_maybe_known(const void *block)
{
	return __atomic_load_n(&tstate_home_count[tstate_slot_of((uintptr_t)block)], __ATOMIC_RELAXED) != 0;
}


/* Freed thread states waiting for their block to be allocated again, as
 * one bit per bucket of blocks: the allocation wrappers do nothing more
 * while it is zero, and claim a block only if its bucket's bit is set. */
extern uint64_t tstate_reuse_buckets;

static inline unsigned tstate_reuse_bucket_of(const void *block)
{
	return (unsigned)(((uint64_t)(uintptr_t)block >> 4) * UINT64_C(0x9e3779b97f4a7c15) >> 58);
}

/* The waiting blocks, 0 empty: REUSE_WAYS per bucket (one cache line). */
#define REUSE_BUCKETS 64u
#define REUSE_WAYS 8u
extern uintptr_t tstate_reuse_block[REUSE_BUCKETS][REUSE_WAYS];

/* Lock-free, for a block whose bucket bit is set: whether it waits (then
 * claim it). */
static inline bool tstate_table_awaits(const void *block)
{
	const uintptr_t *ways = tstate_reuse_block[tstate_reuse_bucket_of(block)];
	bool hit = false;
	for (unsigned w = 0; w < REUSE_WAYS; w++)
		hit |= __atomic_load_n(&ways[w], __ATOMIC_RELAXED) == (uintptr_t)block;
	return hit;
}

/* free() of the known thread state `tstate` whose block is `block`: wait
 * for that block's reuse, unless `unconfirmed` (tstate_table_find_entry)
 * says it was reused too often with nothing showing a thread state there.
 * Before the real free. */
void tstate_table_await_reuse(const void *block, uintptr_t tstate, unsigned unconfirmed);
/* The thread state whose block was just allocated again for a request of
 * `size` bytes that fits it (no longer waiting then), or 0; `unconfirmed`
 * as it was when that thread state was freed. */
uintptr_t tstate_table_claim_reuse(const void *block, size_t size, unsigned *unconfirmed);
/* tstate_table_find(), and how many reuses in a row taught the entry with
 * nothing confirming it since (0: a thread state something showed). */
uintptr_t tstate_table_find_entry(const void *block, unsigned *unconfirmed);
/* After a reuse (wrap-alloc.c): learn `tstate` as unconfirmed, the
 * `unconfirmed`th reuse in a row; tstate_table_learn() confirms it. */
void tstate_table_learn_reused(uintptr_t tstate, unsigned unconfirmed);
/* Blocks served while malloc and calloc were being resolved (wrap-alloc.c);
 * free() must never hand them to the real free. */
#define ALLOC_EARLY_ARENA_SIZE 16384u
extern unsigned char alloc_early_arena[ALLOC_EARLY_ARENA_SIZE] __attribute__((visibility("hidden")));
static inline bool alloc_is_early(const void *block)
{
	return unlikely((uintptr_t)block - (uintptr_t)alloc_early_arena < ALLOC_EARLY_ARENA_SIZE);
}

#endif /* GILTRACE_SHIM_H */
