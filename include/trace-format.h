/*
 * trace-format.h: the on-disk format of a giltrace trace (".gtr").
 *
 * This header is the one contract between the shim (shim/, the writer) and
 * the tools (tools/, the readers).  docs/trace-format.md specifies the same
 * thing in prose; keep the two in step and bump GTR_VERSION_MAJOR on any
 * change an older reader would misread.
 *
 * A trace file is, in this order:
 *
 *   [0, 4096)                    struct gtr_file_header
 *   [4096, chunk_area_offset)    metadata log: gtr_meta_record, appended
 *   [chunk_area_offset, ...)     chunks of chunk_size bytes each
 *
 * Every thread writes its events into chunks it owns; a chunk is owned by
 * one thread for its whole life (in ring mode the thread re-uses its own
 * chunks).  The file is mapped MAP_SHARED by the traced process, so what a
 * thread committed survives a crash or SIGKILL: `used` in the chunk header
 * is the commit marker, stored (release) after the event bytes.
 *
 * All integers are little-endian (the only supported target is x86-64).
 */
#ifndef GILTRACE_TRACE_FORMAT_H
#define GILTRACE_TRACE_FORMAT_H

#include <stdint.h>
#include <stdbool.h>

#define GTR_MAGIC "GILTRACE"           /* 8 bytes, no terminator on disk */
#define GTR_VERSION_MAJOR 3            /* readers refuse another major */
#define GTR_VERSION_MINOR 10           /* readers accept any minor; 1: TSTATE_REUSE,
                                          2: event_words and features in the header,
                                          3: CRASH, 4: the provocations in the header,
                                          5: finalizing_mono_ns in the header, 6: LOCK_WAIT_BEGIN,
                                          LOCK_WAIT_END, LOCK_HELD and
                                          GTR_FLAG_LOCKS_UNTRACKED, 7: GIL_ENABLED,
                                          8: THREAD_INTERP, MODULE_LOAD,
                                          BLOCK_BEGIN, BLOCK_END, 9: writer_version
                                          in the header, TEST_MARK and label
                                          records, 10: PY_STACK, THREAD_PYNAME */
#define GTR_HEADER_SIZE 4096u          /* struct gtr_file_header, padded */
#define GTR_CHUNK_MAGIC 0x4b435447u    /* "GTCK" */
#define GTR_CHUNK_HEADER_SIZE 64u      /* struct gtr_chunk_header, padded */

/* The other contract between the tools and the shim: GILTRACE_OPTIONS, which
 * `giltrace run` builds, is read only if shorter than this. */
#define GTR_OPTIONS_MAX 8192

/* gtr_file_header.flags */
enum gtr_file_flag {
	GTR_FLAG_CLOSED = 1u << 0,       /* the process ended normally (exit) */
	GTR_FLAG_RING = 1u << 1,         /* ring mode: old chunks are reused */
	GTR_FLAG_OUT_OF_SPACE = 1u << 2, /* growth failed: later events lost */
	GTR_FLAG_CLOCK_TSC = 1u << 3,    /* timestamps are TSC ticks, else ns */
	GTR_FLAG_META_FULL = 1u << 4,    /* metadata log overflowed */
	GTR_FLAG_FORK_CHILD = 1u << 5,   /* written by a fork child (no exec) */
	GTR_FLAG_FILE_LOST = 1u << 6,    /* the trace's name led to another file
	                                    (renamed, replaced, removed): growth
	                                    stopped, later events lost */
	GTR_FLAG_LOCKS_UNTRACKED = 1u << 7, /* the shim's lock-owner table was full:
	                                    some PyThread locks made later have
	                                    no owner and no lock events (minor 6) */
	GTR_FLAG_GIL_LAYOUT_DISAGREES = 1u << 8, /* the interpreter's _Py_DebugOffsets
	                                    put the GIL's fields elsewhere than the
	                                    layout table (its own were used; minor 7) */
};

/* gtr_file_header.features: optional records and what their absence means */
enum gtr_feature {
	GTR_FEATURE_STACKS = 1u << 0,       /* stack events follow some events */
	GTR_FEATURE_TSTATE_REUSE = 1u << 1, /* malloc/calloc are watched: a freed
	                                       thread state's block that comes back
	                                       is recorded (tstate-reuse) */
	GTR_FEATURE_GIL_DEBUG_OFFSETS = 1u << 2, /* the GIL's field offsets came from
	                                       the interpreter's own _Py_DebugOffsets
	                                       (3.13), not the layout table (minor 7) */
	GTR_FEATURE_PY_STACKS = 1u << 3,    /* a Python stack follows each native
	                                       stack; Python names follow thread
	                                       starts (minor 10) */
};

/* gtr_file_header.provoke: what the shim did to the run on purpose (option
 * provoke=, docs/options.md), so that a provoked run is never taken for a
 * natural one */
enum gtr_provoke {
	GTR_PROVOKE_EXIT_DELAY = 1u << 0,       /* the finalizing thread held before exit */
	GTR_PROVOKE_EXIT_DELAY_AFTER_FREE = 1u << 1, /* held after freeing thread states
	                                           while finalizing */
	GTR_PROVOKE_POISON = 1u << 2,           /* freed thread states kept, filled with
	                                           GTR_POISON_WORD */
	GTR_PROVOKE_JITTER = 1u << 3,           /* random delays at GIL releases and
	                                           thread-state frees */
};

/* The word a poisoned (freed) thread state is filled with: a canonical
 * user-space address that nothing maps on x86-64 Linux (between the
 * executable's heap, ~0x55.., and the mmap area, ~0x7f..), so that a
 * pointer read from the block faults at once, near this address, and the
 * fault's si_addr names it; not 0xdd, a debug build's fill. */
#define GTR_POISON_WORD UINT64_C(0x00005a5a5a5a5a5a)
/* Faults at addresses in [GTR_POISON_WORD, + this) come from the poison:
 * a field of a structure reached through a poisoned pointer. */
#define GTR_POISON_REACH (UINT64_C(1) << 20)

/* Room for event types in the header's event_words table. */
#define GTR_EVENT_TYPES_MAX 64
/* event_words value of a type whose payload count is its arg (stack). */
#define GTR_EVENT_WORDS_IN_ARG 0xffu

/* gtr_file_header.py_build: what kind of interpreter was traced */
enum gtr_py_build {
	GTR_BUILD_SHARED = 1u << 0,        /* _PyRuntime lives in a libpython*.so */
	GTR_BUILD_DEBUG = 1u << 1,         /* Py_DEBUG / Py_REF_DEBUG build */
	GTR_BUILD_FREE_THREADED = 1u << 2, /* Py_GIL_DISABLED build (3.13t+) */
	GTR_BUILD_PLT_ROUTED = 1u << 3,    /* the interpreter calls its own C-API
	                                      through its PLT: the wrappers see
	                                      internal calls too */
};

/* Two (clock, CLOCK_MONOTONIC ns) pairs convert clock ticks to time:
 * ns = mono_ns0 + (clock - clock0) * (mono_ns1 - mono_ns0) / (clock1 - clock0).
 * calib_* is measured at start-up; end_* is written at a normal exit and is
 * preferred when present (clock1 > clock0 and mono_ns1 > mono_ns0). */
struct gtr_clock_pair {
	uint64_t clock;
	uint64_t mono_ns;
};

struct gtr_file_header {
	char magic[8];               /* GTR_MAGIC */
	uint16_t version_major;      /* GTR_VERSION_MAJOR */
	uint16_t version_minor;      /* GTR_VERSION_MINOR */
	uint32_t header_size;        /* GTR_HEADER_SIZE */
	uint32_t flags;              /* enum gtr_file_flag, updated live */
	uint32_t chunk_size;         /* bytes per chunk, power of two >= 4096 */
	uint64_t chunk_area_offset;  /* file offset of chunk 0 */
	uint64_t meta_capacity;      /* bytes of the metadata log area */
	uint64_t meta_used;          /* committed bytes of the metadata log */
	uint64_t chunks_allocated;   /* chunks handed out so far (commit order) */
	uint32_t ring_chunks;        /* ring mode: chunks per thread, else 0 */
	int32_t pid;
	int32_t ppid;
	uint32_t reserved0;
	uint64_t start_realtime_ns;  /* CLOCK_REALTIME at start, for display */
	struct gtr_clock_pair start; /* clock at trace start (time zero) */
	struct gtr_clock_pair calib; /* second start-up pair, ~1 ms later */
	struct gtr_clock_pair end;   /* at normal exit, else zero */
	/* The traced interpreter */
	uint32_t py_version_hex;     /* PY_VERSION_HEX, 0 if unknown */
	uint32_t py_build;           /* enum gtr_py_build */
	char py_version[128];        /* Py_GetVersion(), NUL-terminated */
	char executable[256];        /* /proc/self/exe, NUL-terminated */
	uint64_t py_runtime_addr;    /* address of _PyRuntime */
	uint32_t features;           /* enum gtr_feature: what the writer may
	                                record (minor 2; 0 before) */
	uint32_t capi_got_slots;     /* GOT slots routed to the C-API wrappers,
	                                updated live as objects are loaded */
	/* Minor 2: the payload words of each event type as the writer knows
	 * them (GTR_EVENT_WORDS_IN_ARG: the count is the event's arg, 0 for
	 * types it does not write), so that a reader skips the events of types
	 * newer than itself instead of stopping at them. */
	uint8_t event_words[GTR_EVENT_TYPES_MAX];
	/* Minor 4: the provocations (enum gtr_provoke; 0 for a natural run,
	 * and in every older trace, whose header is zero here) and their
	 * parameters, 0 for those not asked for. */
	uint32_t provoke;            /* enum gtr_provoke */
	uint32_t provoke_jitter_us;  /* jitter: the longest delay, µs */
	uint64_t provoke_exit_delay_ns;       /* exit-delay */
	uint64_t provoke_after_free_delay_ns; /* exit-delay-after-free */
	uint64_t provoke_jitter_seed;         /* jitter: the seed of its delays */
	/* Minor 5, updated live: CLOCK_MONOTONIC (ns) when the writer first saw
	 * finalization begin (a call of Py_FinalizeEx or Py_Finalize, or the
	 * runtime's finalizing flag set), 0 while it has not or after the
	 * interpreter was initialized again.  Not evidence (the events are):
	 * the clock `giltrace run --exit-timeout` compares with its own, on the
	 * same machine, to see a process that does not exit. */
	uint64_t finalizing_mono_ns;
	/* Minor 9: the giltrace that wrote the trace ("0.13.0 (c2d7a0e)"),
	 * NUL-terminated; zero in older traces. */
	char writer_version[64];
	/* bytes up to GTR_HEADER_SIZE are zero; readers ignore them */
};

/*
 * Metadata log: records of { uint16_t type, uint16_t size (whole record,
 * multiple of 8), payload }.  Appended under the shim's allocation lock;
 * meta_used in the header is the commit marker.
 */
enum gtr_meta_type {
	GTR_META_MODULE = 1, /* struct gtr_meta_module + path (NUL-terminated) */
	GTR_META_GIL = 2,    /* struct gtr_meta_gil */
	GTR_META_LABEL = 3,  /* struct gtr_meta_label + text (NUL-terminated);
	                        minor 9 */
};

struct gtr_meta_record {
	uint16_t type;
	uint16_t size;
	uint32_t reserved;
};

struct gtr_meta_module {
	struct gtr_meta_record rec;
	uint64_t load_address;       /* dlpi_addr */
	uint8_t build_id_len;        /* 0 if the object has none */
	uint8_t build_id[31];
	uint64_t map_size;           /* end of its highest PT_LOAD, from load_address */
	/* char path[]: NUL-terminated, then zero padding to 8 bytes */
};

/* A label that events refer to by id: a test's id (TEST_MARK). */
struct gtr_meta_label {
	struct gtr_meta_record rec;
	uint32_t id;                 /* 1.. */
	uint32_t reserved;
	/* char text[]: NUL-terminated, then zero padding to 8 bytes */
};

/* A GIL object the shim recognised.  Field offsets are relative to base. */
struct gtr_meta_gil {
	struct gtr_meta_record rec;
	uint64_t base;               /* address of struct _gil_runtime_state */
	uint32_t index;              /* the gil byte of events, 0.. */
	uint32_t in_runtime;         /* 1: inside _PyRuntime (main GIL) */
	uint64_t discovered_clock;   /* clock when create_gil was seen */
};

/*
 * Chunk header.  `used` counts committed event bytes after the header; a
 * reader never reads past it.  In ring mode a chunk being re-used has used
 * set to 0 before its seq changes.
 */
struct gtr_chunk_header {
	uint32_t magic;              /* GTR_CHUNK_MAGIC once owned */
	uint32_t used;               /* commit marker (bytes of events) */
	uint32_t thread_serial;      /* 1.. per process, never reused */
	int32_t tid;                 /* kernel thread id */
	uint32_t seq;                /* this thread's chunk sequence, 0.. */
	uint32_t reserved;
	uint64_t first_clock;        /* full clock of the chunk's first event */
	uint64_t pthread_id;         /* pthread_self() of the owner */
	uint8_t pad[24];
};

/*
 * Events.  Every event starts with one 64-bit word:
 *
 *   bits  0..7   type (enum gtr_event_type)
 *   bits  8..15  arg: GIL index for GIL events, else per-type argument
 *   bits 16..63  clock, low 48 bits
 *
 * followed by gtr_event_words(type, arg) 64-bit payload words.  Clocks
 * are unwrapped per thread: each event's clock is the smallest value not
 * below the previous one (the chunk's first_clock seeds it) with those low
 * 48 bits.  The writer emits GTR_EV_CLOCK before an event whose distance to
 * the previous one is 2^47 or more, so the unwrapping is never ambiguous.
 */
#define GTR_CLOCK_BITS 48
#define GTR_CLOCK_MASK ((UINT64_C(1) << GTR_CLOCK_BITS) - 1)

enum gtr_event_type {
	GTR_EV_NONE = 0,              /* never written: a zero word is invalid */
	/* GIL, arg = gil index */
	GTR_EV_GIL_TAKE_BEGIN,        /* take_gil locked the GIL mutex */
	GTR_EV_GIL_WAIT_BEGIN,        /* timed wait on the GIL cond */
	GTR_EV_GIL_WAIT_SIGNALED,     /* the wait returned, not timed out */
	GTR_EV_GIL_WAIT_TIMEOUT,      /* timed out, a switch happened meanwhile */
	GTR_EV_GIL_DROP_REQUEST,      /* timed out, no switch: drop requested */
	GTR_EV_GIL_ACQUIRE,           /* payload: tstate, switch_number */
	GTR_EV_GIL_RELEASE,           /* locked 1 -> 0 by this thread */
	GTR_EV_GIL_TAKE_ABANDON,      /* left take_gil without the GIL */
	GTR_EV_GIL_FORCED_SWITCH_BEGIN, /* drop_gil waits on switch_cond */
	GTR_EV_GIL_FORCED_SWITCH_END,
	GTR_EV_GIL_REINIT,            /* create_gil ran again (fork child) */
	GTR_EV_GIL_HELD_AT_FORK,      /* fork child starts holding; payload: tstate */
	/* threads, arg = per-type */
	GTR_EV_THREAD_START,          /* payload: parent tid */
	GTR_EV_THREAD_EXIT,           /* arg: enum gtr_exit_how | GTR_EXIT_HELD_GIL */
	GTR_EV_THREAD_NAME,           /* payload: 16 bytes of name, NUL-padded */
	GTR_EV_THREAD_PARK,           /* parked: pause() entered; arg: GTR_EXIT_HELD_GIL */
	/* process and interpreter */
	GTR_EV_FORK,                  /* parent side; payload: child pid */
	GTR_EV_FINALIZING,            /* finalizing flag flipped; arg: 1 set, 0 cleared;
	                                 payload: finalizing tstate (0 unknown) */
	/* C-API and thread states, arg = enum gtr_capi for C-API events */
	GTR_EV_CAPI_CALL,             /* entry; payload: subject (the thread state
	                                 or interpreter argument, else 0), caller
	                                 (return address) */
	GTR_EV_CAPI_RETURN,           /* exit; payload: result (thread state,
	                                 interpreter, int status, else 0) */
	GTR_EV_TSTATE_FREE,           /* free() of a known thread state;
	                                 payload: the thread state */
	GTR_EV_CLOCK,                 /* payload: full clock of the next event */
	GTR_EV_STACK,                 /* the native stack of this thread's previous
	                                 event, written right after it with the same
	                                 clock; arg: frame count (1..GTR_STACK_MAX_FRAMES);
	                                 payload: arg return addresses, innermost
	                                 first, from the frame that called into the shim
	                                 (the shim's leading frames left out) */
	GTR_EV_TSTATE_REUSE,          /* malloc/calloc returned the block of a freed
	                                 thread state again, for a request of its
	                                 size: a new thread state may start there
	                                 (minor 1);
	                                 payload: the thread state, bytes asked for */
	GTR_EV_CRASH,                 /* a fatal signal reached this thread (minor 3);
	                                 arg: the signal | enum gtr_crash_disposition
	                                 << 6 (gtr_crash_signal, gtr_crash_disposition);
	                                 payload: the instruction pointer (bits 0..47)
	                                 | si_code << 48 (16 bits, signed:
	                                 gtr_crash_ip, gtr_crash_si_code), the
	                                 faulting address (si_addr) for a signal the
	                                 kernel raised (si_code > 0), else the
	                                 sender's pid; a stack follows, frame 0 the
	                                 full instruction pointer */
	/* PyThread locks (POSIX semaphores of value 1, CPython 3.8-3.13;
	 * docs/cpython-internals.md §7), minor 6 */
	GTR_EV_LOCK_WAIT_BEGIN,       /* a blocking acquire of a lock that did not
	                                 succeed at once, while finalizing; arg: 1
	                                 if it has a timeout; payload: the lock, its
	                                 owner's tid (0 unknown or none) | the
	                                 timeout in µs << 32 (gtr_lock_wait_word) */
	GTR_EV_LOCK_WAIT_END,         /* that wait returned; arg: enum
	                                 gtr_lock_wait_end; payload: the lock */
	GTR_EV_LOCK_HELD,             /* the thread ends, parks or crashes owning a
	                                 lock (one event per lock, before the exit,
	                                 park or crash event); arg: enum
	                                 gtr_lock_held_at; payload: the lock */
	GTR_EV_GIL_ENABLED,           /* free-threaded builds (minor 7): the GIL's
	                                 `enabled` count as the shim saw it change;
	                                 arg: gil index; payload: the count (0
	                                 disabled, GTR_GIL_ENABLED_FOR_GOOD
	                                 permanently, else the transient requests:
	                                 an extension module being imported) */
	GTR_EV_THREAD_INTERP,         /* (minor 8) a thread started from a
	                                 subinterpreter, and the interpreter its
	                                 PyGILState_Ensure calls attach it to
	                                 (gh-59956); arg: enum gtr_interp_seen;
	                                 payload: that interpreter, the main one */
	GTR_EV_MODULE_LOAD,           /* (minor 8) this thread's dlopen() returned
	                                 an object (an extension module's import,
	                                 ctypes); payload: its load address, that
	                                 of its module record */
	GTR_EV_BLOCK_BEGIN,           /* (minor 8) this thread waits on a semaphore
	                                 it made with value 0: CPython 3.13+'s
	                                 parking lot (a contended PyMutex, a
	                                 stop-the-world, a PyEvent), or the
	                                 program's own; arg: 1 with a timeout;
	                                 payload: the semaphore */
	GTR_EV_BLOCK_END,             /* that wait returned; arg: enum
	                                 gtr_lock_wait_end (acquired: woken) */
	GTR_EV_TEST_MARK,             /* (minor 9) the program said a test began
	                                 (arg 1) or ended (arg 0), through
	                                 giltrace_test_mark() (the pytest plugin);
	                                 payload: the test's label id */
	GTR_EV_PY_STACK,              /* (minor 10) the Python stack of this
	                                 thread's previous event, after its native
	                                 stack (if it has one), with the same clock;
	                                 arg: payload words (2..255); payload: a
	                                 status word (gtr_py_stack_word), the
	                                 thread state read (0 none), then per
	                                 frame, innermost first, a frame word
	                                 (gtr_py_frame_word) and its function's
	                                 name and file, their bytes back to back,
	                                 zero-padded to whole words */
	GTR_EV_THREAD_PYNAME,         /* (minor 10) the thread's Python name
	                                 (threading.Thread.name), as read when it
	                                 was started, or again when a Python stack
	                                 showed it changed; arg: payload words
	                                 (1..GTR_PY_NAME_MAX / 8); payload: UTF-8,
	                                 zero-padded */
	GTR_EV_COUNT
};

enum gtr_exit_how {
	GTR_EXIT_RETURN = 1,          /* start routine returned */
	GTR_EXIT_PTHREAD_EXIT = 2,    /* pthread_exit() */
	GTR_EXIT_PROCESS = 3,         /* the process exited (main thread) */
};
#define GTR_EXIT_HELD_GIL 0x80u       /* arg bit: the thread held a GIL */

/* GTR_EV_GIL_ENABLED's count of a GIL enabled for good (INT_MAX in
 * CPython: PYTHON_GIL=1, or a module without Py_mod_gil_not_used). */
#define GTR_GIL_ENABLED_FOR_GOOD 0x7fffffffu

/* Which interpreter a THREAD_INTERP event gives (its arg).  Only threads
 * whose creator held the GIL of an interpreter other than the main one
 * get these events. */
enum gtr_interp_seen {
	GTR_INTERP_OF_CREATOR = 1,    /* the creator's, at pthread_create */
	GTR_INTERP_OF_GILSTATE = 2,   /* the thread's after a PyGILState_Ensure */
};

/* How a lock wait ended (arg of GTR_EV_LOCK_WAIT_END). */
enum gtr_lock_wait_end {
	GTR_LOCK_ACQUIRED = 1,
	GTR_LOCK_TIMED_OUT = 2,       /* ETIMEDOUT */
	GTR_LOCK_INTERRUPTED = 3,     /* EINTR: a signal handler ran */
	GTR_LOCK_FAILED = 4,          /* another error (EINVAL) */
};

/* When a thread was seen owning a lock (arg of GTR_EV_LOCK_HELD). */
enum gtr_lock_held_at {
	GTR_LOCK_HELD_AT_EXIT = 1,    /* it returned or called pthread_exit() */
	GTR_LOCK_HELD_AT_PARK = 2,    /* it parked in pause() */
	GTR_LOCK_HELD_AT_CRASH = 3,   /* a fatal signal reached it */
};

/* What the program had installed for a crash signal when it arrived (the
 * top two bits of a crash event's arg). */
enum gtr_crash_disposition {
	GTR_CRASH_DEFAULT = 0,        /* SIG_DFL: the process dies of it */
	GTR_CRASH_HANDLER = 1,        /* a handler of the program's, called next */
	GTR_CRASH_IGNORED = 2,        /* SIG_IGN (the kernel still kills for a fault) */
};

static inline unsigned gtr_crash_arg(unsigned sig, unsigned disposition)
{
	return (sig & 0x3fu) | (disposition & 3u) << 6;
}

static inline unsigned gtr_crash_signal(unsigned arg)
{
	return arg & 0x3fu;
}

static inline unsigned gtr_crash_disposition(unsigned arg)
{
	return arg >> 6 & 3u;
}

static inline uint64_t gtr_crash_word(uint64_t ip, int si_code)
{
	return (ip & ((UINT64_C(1) << 48) - 1)) | (uint64_t)(uint16_t)si_code << 48;
}

static inline uint64_t gtr_crash_ip(uint64_t word)
{
	return word & ((UINT64_C(1) << 48) - 1);
}

static inline int gtr_crash_si_code(uint64_t word)
{
	return (int)(int16_t)(uint16_t)(word >> 48);
}

/* A lock wait's second word: the owner's tid, the timeout in µs (at most
 * UINT32_MAX: 71 minutes; 0 with no timeout). */
static inline uint64_t gtr_lock_wait_word(int32_t owner, uint64_t timeout_us)
{
	return (uint64_t)(uint32_t)owner | (timeout_us > UINT32_MAX ? UINT32_MAX : timeout_us) << 32;
}

static inline int32_t gtr_lock_wait_owner(uint64_t word)
{
	return (int32_t)(uint32_t)word;
}

static inline uint64_t gtr_lock_wait_timeout_us(uint64_t word)
{
	return word >> 32;
}

#define GTR_STACK_MAX_FRAMES 64u

/* ---- Python stacks (PY_STACK) and names (THREAD_PYNAME), minor 10 --------
 * Read by the shim in its own process through process_vm_readv, so that a
 * freed or torn frame gives a status, not a fault (shim/pystack.c). */
#define GTR_PY_STACK_MAX_WORDS 255u   /* an event's arg holds the count */
#define GTR_PY_STACK_MAX_FRAMES 64u   /* py_stack_depth's limit */
#define GTR_PY_NAME_MAX 128u          /* bytes of a thread's Python name */
#define GTR_PY_FUNCTION_MAX 128u      /* bytes of a function's name kept */
#define GTR_PY_FILE_MAX 240u          /* bytes of a file's path kept (its end) */

/* How a Python stack's walk ended (the status word's low byte). */
enum gtr_py_stack_end {
	GTR_PY_STACK_COMPLETE = 1,    /* the outermost frame was reached */
	GTR_PY_STACK_DEPTH = 2,       /* stopped at the depth asked for */
	GTR_PY_STACK_ROOM = 3,        /* stopped: the event had no room left */
	GTR_PY_STACK_UNREADABLE = 4,  /* a read failed (errno in the word): a
	                                 freed or torn thread state or frame */
	GTR_PY_STACK_NO_THREAD_STATE = 5, /* the thread has none the shim can find */
	GTR_PY_STACK_NO_LAYOUT = 6,   /* no frame layout for this interpreter */
	GTR_PY_STACK_BAD_FRAME = 7,   /* a frame's fields made no sense (a
	                                 loop: a torn chain) */
	GTR_PY_STACK_BUSY = 8,        /* not read: a crash handler found another
	                                 walk under way (the one it interrupted) */
};

/* Where the walk found the thread state it read (the status word's third
 * byte). */
enum gtr_py_stack_source {
	GTR_PY_SOURCE_NONE = 0,
	GTR_PY_SOURCE_ARGUMENT = 1,   /* the C-API call's thread-state argument */
	GTR_PY_SOURCE_ATTACHED = 2,   /* the thread's attached thread state */
	GTR_PY_SOURCE_BOUND = 3,      /* the one bound to the thread (PyGILState) */
	GTR_PY_SOURCE_LAST_USED = 4,  /* the last one the thread took the GIL with:
	                                 it may have been freed since */
};

/* The status word: how the walk ended, frames recorded, the thread
 * state's source, the errno of an unreadable read. */
static inline uint64_t gtr_py_stack_word(unsigned end, unsigned frames, unsigned source, int err)
{
	return (uint64_t)(end & 0xffu) | (uint64_t)(frames & 0xffu) << 8 | (uint64_t)(source & 0xffu) << 16 |
	       (uint64_t)(uint32_t)err << 32;
}
static inline unsigned gtr_py_stack_end(uint64_t w) { return (unsigned)(w & 0xffu); }
static inline unsigned gtr_py_stack_frames(uint64_t w) { return (unsigned)(w >> 8 & 0xffu); }
static inline unsigned gtr_py_stack_source(uint64_t w) { return (unsigned)(w >> 16 & 0xffu); }
static inline int gtr_py_stack_errno(uint64_t w) { return (int)(uint32_t)(w >> 32); }

/* A frame word: the line (-1 unknown), the lengths of the function's name
 * and file bytes that follow, and flags. */
enum gtr_py_frame_flag {
	GTR_PY_FRAME_FILE_CUT = 1u << 0,     /* the file's path lost its start */
	GTR_PY_FRAME_FUNCTION_CUT = 1u << 1, /* the name lost its end */
	GTR_PY_FRAME_CODE_UNREADABLE = 1u << 2, /* the frame, not its code: no names */
	GTR_PY_FRAME_QUALIFIED = 1u << 3,    /* the name is co_qualname (3.11+) */
};
static inline uint64_t gtr_py_frame_word(int line, unsigned function_len, unsigned file_len, unsigned flags)
{
	return (uint64_t)(uint32_t)line | (uint64_t)(function_len & 0xfffu) << 32 |
	       (uint64_t)(file_len & 0xfffu) << 44 | (uint64_t)(flags & 0xffu) << 56;
}
static inline int gtr_py_frame_line(uint64_t w) { return (int)(uint32_t)w; }
static inline unsigned gtr_py_frame_function_len(uint64_t w) { return (unsigned)(w >> 32 & 0xfffu); }
static inline unsigned gtr_py_frame_file_len(uint64_t w) { return (unsigned)(w >> 44 & 0xfffu); }
static inline unsigned gtr_py_frame_flags(uint64_t w) { return (unsigned)(w >> 56); }

/* Payload words per event type; a type not listed here has none, and the
 * types sized by their arg (STACK, PY_STACK, THREAD_PYNAME) carry their
 * count there (gtr_event_words). */
static const uint8_t gtr_event_payload_words[GTR_EV_COUNT] = {
	[GTR_EV_GIL_ACQUIRE] = 2,
	[GTR_EV_GIL_HELD_AT_FORK] = 1,
	[GTR_EV_THREAD_START] = 1,
	[GTR_EV_THREAD_NAME] = 2,
	[GTR_EV_FORK] = 1,
	[GTR_EV_FINALIZING] = 1,
	[GTR_EV_CAPI_CALL] = 2,
	[GTR_EV_CAPI_RETURN] = 1,
	[GTR_EV_TSTATE_FREE] = 1,
	[GTR_EV_CLOCK] = 1,
	[GTR_EV_TSTATE_REUSE] = 2,
	[GTR_EV_CRASH] = 2,
	[GTR_EV_LOCK_WAIT_BEGIN] = 2,
	[GTR_EV_LOCK_WAIT_END] = 1,
	[GTR_EV_LOCK_HELD] = 1,
	[GTR_EV_GIL_ENABLED] = 1,
	[GTR_EV_THREAD_INTERP] = 2,
	[GTR_EV_MODULE_LOAD] = 1,
	[GTR_EV_BLOCK_BEGIN] = 1,
	[GTR_EV_TEST_MARK] = 1,
};

_Static_assert(__builtin_offsetof(struct gtr_file_header, writer_version) == 640,
               "docs/trace-format.md gives the writer's version's offset");
_Static_assert(__builtin_offsetof(struct gtr_file_header, provoke) == 600 &&
                       __builtin_offsetof(struct gtr_file_header, provoke_jitter_seed) == 624,
               "docs/trace-format.md gives the provocations' offsets");
_Static_assert(GTR_EV_COUNT <= GTR_EVENT_TYPES_MAX, "the header's event_words table holds every type");

/* Payload words of an event of `type` (< GTR_EV_COUNT) with `arg`. */
static inline bool gtr_event_is_sized_by_arg(unsigned type)
{
	return type == GTR_EV_STACK || type == GTR_EV_PY_STACK || type == GTR_EV_THREAD_PYNAME;
}

static inline unsigned gtr_event_words(unsigned type, unsigned arg)
{
	return gtr_event_is_sized_by_arg(type) ? arg : gtr_event_payload_words[type];
}

/* The header's event_words entry of a known type. */
static inline uint8_t gtr_event_words_entry(unsigned type)
{
	return gtr_event_is_sized_by_arg(type) ? GTR_EVENT_WORDS_IN_ARG : gtr_event_payload_words[type];
}

/*
 * The C-API entry points the shim wraps (docs/cpython-internals.md §5), in the
 * arg byte of CAPI events.  Which of them record a CALL, a RETURN or both
 * is stated in docs/trace-format.md.
 */
enum gtr_capi {
	GTR_CAPI_NONE = 0,
	GTR_CAPI_PyEval_SaveThread,
	GTR_CAPI_PyEval_RestoreThread,
	GTR_CAPI_PyEval_AcquireThread,
	GTR_CAPI_PyEval_ReleaseThread,
	GTR_CAPI_PyEval_AcquireLock,
	GTR_CAPI_PyEval_ReleaseLock,
	GTR_CAPI_PyGILState_Ensure,
	GTR_CAPI_PyGILState_Release,
	GTR_CAPI_PyThreadState_New,
	GTR_CAPI_PyThreadState_Clear,
	GTR_CAPI_PyThreadState_Delete,
	GTR_CAPI_PyThreadState_DeleteCurrent,
	GTR_CAPI_PyThreadState_Swap,
	GTR_CAPI_PyInterpreterState_New,
	GTR_CAPI_PyInterpreterState_Clear,
	GTR_CAPI_PyInterpreterState_Delete,
	GTR_CAPI_Py_Initialize,
	GTR_CAPI_Py_InitializeEx,
	GTR_CAPI_Py_InitializeFromConfig,
	GTR_CAPI_Py_FinalizeEx,
	GTR_CAPI_Py_Finalize,
	GTR_CAPI_Py_RunMain,
	GTR_CAPI_Py_NewInterpreter,
	GTR_CAPI_Py_EndInterpreter,
	GTR_CAPI_PyThread_exit_thread,
	/* PEP 788 (3.15), minor 8 */
	GTR_CAPI_PyInterpreterGuard_FromCurrent,
	GTR_CAPI_PyInterpreterGuard_FromView,
	GTR_CAPI_PyInterpreterGuard_Close,
	GTR_CAPI_PyThreadState_Ensure,
	GTR_CAPI_PyThreadState_EnsureFromView,
	GTR_CAPI_PyThreadState_Release,
	GTR_CAPI_COUNT
};

/* The functions' names, indexed by enum gtr_capi. */
static const char *const gtr_capi_names[GTR_CAPI_COUNT] = {
	[GTR_CAPI_PyEval_SaveThread] = "PyEval_SaveThread",
	[GTR_CAPI_PyEval_RestoreThread] = "PyEval_RestoreThread",
	[GTR_CAPI_PyEval_AcquireThread] = "PyEval_AcquireThread",
	[GTR_CAPI_PyEval_ReleaseThread] = "PyEval_ReleaseThread",
	[GTR_CAPI_PyEval_AcquireLock] = "PyEval_AcquireLock",
	[GTR_CAPI_PyEval_ReleaseLock] = "PyEval_ReleaseLock",
	[GTR_CAPI_PyGILState_Ensure] = "PyGILState_Ensure",
	[GTR_CAPI_PyGILState_Release] = "PyGILState_Release",
	[GTR_CAPI_PyThreadState_New] = "PyThreadState_New",
	[GTR_CAPI_PyThreadState_Clear] = "PyThreadState_Clear",
	[GTR_CAPI_PyThreadState_Delete] = "PyThreadState_Delete",
	[GTR_CAPI_PyThreadState_DeleteCurrent] = "PyThreadState_DeleteCurrent",
	[GTR_CAPI_PyThreadState_Swap] = "PyThreadState_Swap",
	[GTR_CAPI_PyInterpreterState_New] = "PyInterpreterState_New",
	[GTR_CAPI_PyInterpreterState_Clear] = "PyInterpreterState_Clear",
	[GTR_CAPI_PyInterpreterState_Delete] = "PyInterpreterState_Delete",
	[GTR_CAPI_Py_Initialize] = "Py_Initialize",
	[GTR_CAPI_Py_InitializeEx] = "Py_InitializeEx",
	[GTR_CAPI_Py_InitializeFromConfig] = "Py_InitializeFromConfig",
	[GTR_CAPI_Py_FinalizeEx] = "Py_FinalizeEx",
	[GTR_CAPI_Py_Finalize] = "Py_Finalize",
	[GTR_CAPI_Py_RunMain] = "Py_RunMain",
	[GTR_CAPI_Py_NewInterpreter] = "Py_NewInterpreter",
	[GTR_CAPI_Py_EndInterpreter] = "Py_EndInterpreter",
	[GTR_CAPI_PyThread_exit_thread] = "PyThread_exit_thread",
	[GTR_CAPI_PyInterpreterGuard_FromCurrent] = "PyInterpreterGuard_FromCurrent",
	[GTR_CAPI_PyInterpreterGuard_FromView] = "PyInterpreterGuard_FromView",
	[GTR_CAPI_PyInterpreterGuard_Close] = "PyInterpreterGuard_Close",
	[GTR_CAPI_PyThreadState_Ensure] = "PyThreadState_Ensure",
	[GTR_CAPI_PyThreadState_EnsureFromView] = "PyThreadState_EnsureFromView",
	[GTR_CAPI_PyThreadState_Release] = "PyThreadState_Release",
};

/* Whether a CAPI_CALL's subject is a thread state (else an interpreter, a
 * PyGILState_STATE, an int or 0). */
static inline int gtr_capi_subject_is_tstate(unsigned fn)
{
	switch (fn) {
	case GTR_CAPI_PyEval_RestoreThread:
	case GTR_CAPI_PyEval_AcquireThread:
	case GTR_CAPI_PyEval_ReleaseThread:
	case GTR_CAPI_PyThreadState_Clear:
	case GTR_CAPI_PyThreadState_Delete:
	case GTR_CAPI_PyThreadState_Swap:
	case GTR_CAPI_Py_EndInterpreter:
		return 1;
	default:
		return 0;
	}
}

/* The packed fields: an event's first word, a thread exit's arg. */
static inline uint64_t gtr_event_word(unsigned type, unsigned arg, uint64_t clock)
{
	return (uint64_t)(type & 0xff) | (uint64_t)(arg & 0xff) << 8 |
	       (clock & GTR_CLOCK_MASK) << 16;
}

static inline unsigned gtr_event_word_type(uint64_t word)
{
	return (unsigned)(word & 0xff);
}

static inline unsigned gtr_event_word_arg(uint64_t word)
{
	return (unsigned)(word >> 8 & 0xff);
}

/* The low GTR_CLOCK_BITS of the event's clock (unwrap per thread). */
static inline uint64_t gtr_event_word_clock(uint64_t word)
{
	return word >> 16;
}

static inline unsigned gtr_exit_how(unsigned arg)
{
	return arg & ~GTR_EXIT_HELD_GIL & 0xffu;
}

static inline int gtr_exit_held_gil(unsigned arg)
{
	return (arg & GTR_EXIT_HELD_GIL) != 0;
}

#endif /* GILTRACE_TRACE_FORMAT_H */
