/*
 * trace.h: reading a trace file (format: include/trace-format.h).
 *
 * trace_open() maps the part of the file its header promises (the header,
 * the metadata log and the chunks handed out; never a preallocated tail)
 * and indexes the chunks by thread; it decodes no event.  A walk
 * (trace_walk_begin/next/end) then decodes each thread's chunks as it goes
 * and merges the threads' streams lazily, by clock: the events are never
 * held in memory, only one decoded event per thread.  Memory follows the
 * threads and chunks, not the events.
 *
 * The first walk completes what only the events can say: the count, the
 * thread names, the losses, the stacks' index, the notes on damage, the
 * end of the trace.  They are final once it ends; while it runs, every
 * loss that begins before the event being walked is known (a loss is
 * found when its thread's last event before it is reached), which is what
 * trace_lost_within() is asked about.
 *
 * The reader never trusts the file: every size and offset is checked
 * against the mapping.  A file that is not a trace, or whose header is
 * unusable, fails trace_open() with a one-line reason; damage further in
 * (a truncated file, a corrupt chunk) is skipped, described in
 * trace.notes, and everything readable is kept.  The mapping relies on
 * the file not shrinking below what its header promised while it is read
 * (the shim trims only past its last chunk); if someone else truncates it,
 * the access faults and the command stops with that reason, never with a
 * crash.
 */
#ifndef GILTRACE_TRACE_H
#define GILTRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace-format.h"

struct trace_loss;
struct snapshot;

/* One decoded event.  ns is relative to the trace start (header `start`). */
struct trace_event {
	size_t index;               /* its place in the walk's order, from 0 */
	uint64_t clock;             /* raw clock, unwrapped: the merge order */
	uint64_t ns;
	uint32_t thread;            /* index into trace.threads */
	uint8_t type;               /* enum gtr_event_type */
	uint8_t arg;                /* GIL index, or the per-type argument */
	uint64_t payload[2];
};

struct trace_thread {
	uint32_t serial;            /* per process, from 1 */
	int32_t tid;
	uint64_t pthread_id;
	char name[17];              /* from THREAD_NAME, or "" */
	char py_name[GTR_PY_NAME_MAX + 1]; /* threading.Thread.name (THREAD_PYNAME,
	                               the last one), or "" */
	bool events_lost;           /* ring mode dropped this thread's oldest events,
	                               or it has another loss (trace.losses) */
	struct trace_loss *losses;  /* its own, in time order (a union already) */
	size_t loss_count, loss_cap;
	size_t first_chunk, chunk_count; /* its range of trace.chunks, by seq */
};

/* A stretch of one thread's events that the trace does not hold.  Events
 * are lost, never reordered: the thread's kept events before and after the
 * loss bound it, so its lost events lie strictly inside (from_ns, to_ns). */
enum trace_loss_kind {
	TRACE_LOSS_LEADING,  /* before its first kept chunk (ring mode reused the
	                        older ones): from_ns is 0 */
	TRACE_LOSS_GAP,      /* between two kept chunks whose seqs are not
	                        consecutive */
	TRACE_LOSS_TRAILING, /* after its last kept chunk: the file was cut short
	                        or ran out of space; to_ns is UINT64_MAX */
};

struct trace_loss {
	enum trace_loss_kind kind;
	uint32_t thread;            /* index into trace.threads */
	uint64_t from_ns, to_ns;
	uint64_t chunks;            /* chunks lost, when the seqs say (else 0) */
};

/* Disjoint, sorted open intervals (from_ns, to_ns) covering some losses. */
struct trace_loss_union {
	struct trace_loss *items;   /* only from_ns and to_ns are meaningful */
	size_t count, cap;
};

struct trace_gil {
	uint32_t index;
	uint64_t base;
	bool in_runtime;
};

struct trace_module {
	uint64_t load_address;
	uint64_t map_size;          /* extent from load_address */
	char build_id[63];          /* hex, "" if none */
	char *path;
};

/* A label of the metadata log: a test's id, named by TEST_MARK events. */
struct trace_label {
	uint32_t id;
	char *text;                 /* sanitised for printing */
};

/* The native stack recorded with an event (GTR_EV_STACK). */
struct trace_stack {
	size_t event;               /* the event's index in the walk's order */
	const uint64_t *frames;     /* return addresses, innermost first (in the
	                               mapping: valid until trace_close) */
	uint32_t count;
};

/* A Python frame of a PY_STACK (tools/read/py-stack.c). */
struct trace_py_frame {
	int line;                   /* -1 unknown */
	unsigned flags;             /* enum gtr_py_frame_flag */
	char *function, *file;      /* sanitised; "" when the code was unreadable */
};

/* The Python stack recorded with an event, as read (innermost first). */
struct trace_py_stack {
	size_t event;               /* the event's index in the walk's order */
	unsigned end;               /* enum gtr_py_stack_end, 0 if damaged */
	unsigned source;            /* enum gtr_py_stack_source */
	uint64_t tstate;            /* the thread state read, 0 none */
	int err;                    /* GTR_PY_STACK_UNREADABLE: the read's errno */
	struct trace_py_frame *frames;
	uint32_t count;
};

/* A chunk of events, as trace_open() found it. */
struct trace_chunk {
	uint64_t index;             /* its place in the chunk area */
	uint32_t used;              /* event bytes, checked against the chunk */
	uint32_t seq;
	uint64_t first_clock;       /* seeds the unwrapping of its clocks */
};

struct trace {
	const char *path;
	struct gtr_file_header header;  /* copy; zero-filled past what was read */
	bool clock_is_tsc;
	double ns_per_tick;
	bool calibrated;            /* false: no usable clock pair (times are ticks) */

	const unsigned char *map;   /* the file, up to map_size bytes */
	size_t map_size;

	struct trace_thread *threads;
	size_t thread_count;
	struct trace_chunk *chunks; /* by thread, each thread's by seq */
	size_t chunk_count;
	bool walked;                /* a walk ended: the fields it fills are final */
	size_t event_count;         /* after the first walk */
	struct trace_gil *gils;
	size_t gil_count;
	struct trace_module *modules;
	size_t module_count;
	struct trace_label *labels; /* test ids (GTR_META_LABEL), by id order of the log */
	size_t label_count;
	/* stacks, in event order (filled by the first walk) */
	struct trace_stack *stacks;
	size_t stack_count, stack_cap;
	size_t stacks_orphaned;     /* whose events were cut (a corrupt chunk) */
	struct trace_py_stack *py_stacks; /* in event order (the first walk) */
	size_t py_stack_count, py_stack_cap;

	/* How complete the evidence is.  `truncated` (kept for the views that
	 * say "the process did not exit normally") is not_closed or
	 * out_of_space; trace_incomplete() adds a file cut short. */
	bool truncated;             /* not_closed || out_of_space */
	bool not_closed;            /* no CLOSED flag: crash, kill, or still running */
	bool out_of_space;          /* the shim could not grow the file, or lost it
	                               (GTR_FLAG_FILE_LOST): later events missing */
	bool cut_short;             /* the file is shorter than its header says:
	                               a partial copy (chunks or metadata missing) */
	uint64_t chunks_in_file;    /* of header.chunks_allocated */
	uint64_t last_event_ns;     /* the newest committed event (first walk) */
	uint64_t end_ns;            /* exit clock pair if closed, else last event
	                               (first walk) */

	/* events lost inside the trace (ring mode, a cut copy, a full disk),
	 * by thread, each thread's in time order (complete after the first
	 * walk; during it, threads[].losses and the unions grow); the unions
	 * answer trace_lost_within() */
	struct trace_loss *losses;
	size_t loss_count;
	uint64_t chunks_lost;       /* sum of losses[].chunks */
	size_t threads_with_loss;
	struct trace_loss_union loss_gaps; /* GAP and TRAILING losses */
	struct trace_loss_union loss_all;  /* every loss */

	uint64_t newer_types_noted; /* bit per event type skipped as unknown */
	/* the hang snapshot beside the trace (snapshot.h), taken by run or
	 * stress --timeout before they ended the process, or NULL */
	struct snapshot *snapshot;
	char **notes;               /* problems met while reading, one line each */
	size_t note_count;
	size_t notes_at_open;       /* those trace_open() found; the first walk
	                               adds the rest */
};

/* Map `path` and index its chunks.  Returns 0, or -1 with a one-line
 * reason in err (the file cannot be used at all); t must be closed with
 * trace_close() either way. */
int trace_open(struct trace *t, const char *path, char *err, size_t errlen);
void trace_close(struct trace *t);

/* A walk over the events of every thread, merged in time order (by raw
 * clock, ties by thread).  Walks may be repeated; the first one completes
 * the trace (see above), so no two walks of one trace run at once.  The
 * event returned lives until the next call; it carries its index in the
 * order. */
struct trace_walk;
/* NULL when out of memory. */
struct trace_walk *trace_walk_begin(struct trace *t);
const struct trace_event *trace_walk_next(struct trace_walk *w);
/* Ends the walk (early, too): 0, or -1 if it ran out of memory (then the
 * fields it fills are incomplete). */
int trace_walk_end(struct trace_walk *w);

/* A walk's place after the event it returned last, to resume a later walk
 * there: a view that shows a window of the trace walks from a place near
 * its start, not from the beginning.  trace_walk_tell() gives a copy
 * (NULL when out of memory; free() it) of trace_walk_place_size() bytes;
 * trace_walk_resume() starts a walk there once the trace was walked (NULL
 * when out of memory, or the trace is not walked yet). */
struct trace_walk_place;
struct trace_walk_place *trace_walk_tell(const struct trace_walk *w);
size_t trace_walk_place_size(const struct trace *t);
struct trace_walk *trace_walk_resume(struct trace *t, const struct trace_walk_place *p);
/* Read and check only the header; 0 or -1. */
int trace_read_header(const char *path, struct gtr_file_header *h);

/* Strings from a trace may be anything: keep printable ASCII and valid
 * UTF-8 other than C1 controls, replace every other byte with '?', in
 * place. */
void trace_sanitize_string(char *s);
/* The length of the valid UTF-8 sequence of 2-4 bytes at p (at most
 * `left` bytes), or 0: overlong forms, surrogates and code points past
 * U+10FFFF are not valid. */
size_t trace_utf8_sequence(const unsigned char *p, size_t left);

/* Whether the trace is incomplete evidence: cut short, not closed, out of
 * space, or (once walked) empty: a Python process always takes its GIL, so
 * a trace without a single event recorded nothing, whatever the reason.
 * A ring trace that overwrote its oldest events is not incomplete (that is
 * what ring mode is for); its losses are listed. */
bool trace_incomplete(const struct trace *t);
/* The most reasons trace_incomplete_reasons() gives. */
#define TRACE_INCOMPLETE_REASONS 4
/* Why, in a few words for a line of text ("the file is cut short: 44 of
 * 249 chunks; the process did not exit normally"), or "" if complete;
 * returns buf. */
const char *trace_incomplete_why(const struct trace *t, char *buf, size_t size);
/* The stable ids of the reasons, in the order of trace_incomplete_why():
 * "cut_short", "not_closed", "out_of_space", "empty"; returns how many. */
size_t trace_incomplete_reasons(const struct trace *t, const char *ids[TRACE_INCOMPLETE_REASONS]);
/* The provocations of the run (format 3.4: header.provoke, option
 * provoke= of the shim), in the words of the option: "exit-delay=1s,
 * poison, jitter=50us seed=1234"; NULL for a natural run. */
const char *trace_provoked(const struct trace *t, char *buf, size_t size);
/* When the traced interpreter is outside the versions giltrace was tested
 * on (3.8-3.13; an unknown version is not): true, with one line in buf
 * that says what the trace can and cannot be trusted for (3.14 and 3.15:
 * supported from the source alone; older and newer: not supported).
 * trace_open() also adds it to the trace's notes. */
bool trace_version_unsupported(const struct trace *t, char *buf, size_t size);
/* The text of the label with id (a test's id), or NULL. */
const char *trace_label_text(const struct trace *t, uint64_t id);
/* The giltrace that wrote the trace ("0.13.0 (c2d7a0e)"), its header's
 * bounded string copied into buf; NULL for a trace older than format 3.9. */
const char *trace_writer_version(const struct trace *t, char *buf, size_t size);
/* Whether events of some thread may be missing strictly between from_ns
 * and to_ns: a GAP or TRAILING loss overlaps (from_ns, to_ns), or with
 * leading_too any loss does. */
bool trace_lost_within(const struct trace *t, uint64_t from_ns, uint64_t to_ns, bool leading_too);
/* Add a loss of thread loss.thread, later in its time than its others:
 * to its list and the unions.  0, or -1 when out of memory. */
int trace_add_loss(struct trace *t, struct trace_loss loss);
/* List every thread's losses in trace.losses, thread by thread, once the
 * first walk found them all: 0, or -1 when out of memory. */
int trace_collect_losses(struct trace *t);
/* The same for the losses of one thread (an index into threads). */
bool trace_thread_lost_within(const struct trace *t, uint32_t thread, uint64_t from_ns, uint64_t to_ns);
/* "leading", "gap", "trailing". */
const char *trace_loss_kind_name(enum trace_loss_kind kind);

/* Name of an event type for dump and messages ("gil-acquire"). */
const char *trace_event_name(unsigned type);
/* Name of a wrapped C-API function ("PyEval_RestoreThread"). */
const char *trace_capi_name(unsigned fn);
/* How a thread ended, from a thread-exit event's arg without
 * GTR_EXIT_HELD_GIL ("return", "pthread_exit", "process_exit", else
 * "unknown"). */
const char *trace_exit_how_name(unsigned how);
/* "acquired", "timed-out", ... (enum gtr_lock_wait_end), "unknown". */
const char *trace_lock_wait_end_name(unsigned end);
/* "exit", "park", "crash" (enum gtr_lock_held_at), "unknown". */
const char *trace_lock_held_at_name(unsigned at);
/* A crash event's signal ("SIGSEGV"), si_code ("SEGV_MAPERR", "SI_TKILL")
 * and disposition ("default", "handler", "ignored"); buf holds a number
 * that has no name. */
const char *trace_signal_name(unsigned sig, char *buf, size_t size);
const char *trace_si_code_name(unsigned sig, int code, char *buf, size_t size);
const char *trace_crash_disposition_name(unsigned disposition);
/* The stack recorded with the event of that index, or NULL (also for
 * SIZE_MAX, a finding's "no event"). */
const struct trace_stack *trace_stack_of(const struct trace *t, size_t event);
/* The Python stack recorded with the event of that index, or NULL (also
 * for SIZE_MAX). */
const struct trace_py_stack *trace_py_stack_of(const struct trace *t, size_t event);
/* Why a Python stack ends where it does, in a few words ("" complete). */
const char *trace_py_stack_end_phrase(const struct trace_py_stack *ps, char *buf, size_t size);
/* The loaded object that contains `address`, or NULL. */
const struct trace_module *trace_module_of(const struct trace *t, uint64_t address);

#endif
