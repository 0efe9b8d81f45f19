/*
 * trace.h: reading a trace file into memory (format: include/trace-format.h).
 *
 * The reader never trusts the file: every size and offset is checked
 * against what was actually read.  A file that is not a trace, or whose
 * header is unusable, fails trace_load() with a one-line reason; damage
 * further in (a truncated file, a corrupt chunk) is skipped, described in
 * trace.notes, and everything readable is kept.
 */
#ifndef GILTRACE_TRACE_H
#define GILTRACE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace-format.h"

/* One decoded event.  ns is relative to the trace start (header `start`). */
struct trace_event {
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
	bool events_lost;           /* ring mode dropped this thread's oldest events,
	                               or it has another loss (trace.losses) */
	size_t first_loss, loss_count; /* its range of trace.losses */
	size_t first_event, event_count; /* range in the per-thread order (internal) */
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
	size_t count;
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

/* The native stack recorded with an event (GTR_EV_STACK). */
struct trace_stack {
	size_t event;               /* index into trace.events */
	uint32_t first;             /* index into trace.stack_frames */
	uint32_t count;
};

struct trace {
	const char *path;
	struct gtr_file_header header;  /* copy; zero-filled past what was read */
	bool clock_is_tsc;
	double ns_per_tick;
	bool calibrated;            /* false: no usable clock pair (times are ticks) */

	struct trace_thread *threads;
	size_t thread_count;
	struct trace_event *events; /* all threads, merged in time order */
	size_t event_count;
	struct trace_gil *gils;
	size_t gil_count;
	struct trace_module *modules;
	size_t module_count;
	/* stacks, in event order; frames are return addresses, innermost first */
	struct trace_stack *stacks;
	size_t stack_count;
	uint64_t *stack_frames;
	size_t stack_frame_count, stack_frame_cap;

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
	uint64_t last_event_ns;     /* the newest committed event */
	uint64_t end_ns;            /* exit clock pair if closed, else last event */

	/* events lost inside the trace (ring mode, a cut copy, a full disk),
	 * by thread, each thread's in time order; the unions answer
	 * trace_lost_within() */
	struct trace_loss *losses;
	size_t loss_count;
	uint64_t chunks_lost;       /* sum of losses[].chunks */
	size_t threads_with_loss;
	struct trace_loss_union loss_gaps; /* GAP and TRAILING losses */
	struct trace_loss_union loss_all;  /* every loss */

	uint64_t newer_types_noted; /* bit per event type skipped as unknown */
	char **notes;               /* problems met while reading, one line each */
	size_t note_count;
};

/* Read and decode `path`.  Returns 0, or -1 with a one-line reason in err
 * (the file cannot be used at all); t must be freed with trace_free()
 * either way. */
int trace_load(struct trace *t, const char *path, char *err, size_t errlen);
void trace_free(struct trace *t);
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

/* Whether the trace is incomplete evidence: cut short, not closed, or
 * out of space.  A ring trace that overwrote its oldest events is not
 * incomplete (that is what ring mode is for); its losses are listed. */
bool trace_incomplete(const struct trace *t);
/* Why, in a few words for a line of text ("the file is cut short: 44 of
 * 249 chunks; the process did not exit normally"), or "" if complete;
 * returns buf. */
const char *trace_incomplete_why(const struct trace *t, char *buf, size_t size);
/* The stable ids of the reasons, in the order of trace_incomplete_why():
 * "cut_short", "not_closed", "out_of_space"; returns how many (<= 3). */
size_t trace_incomplete_reasons(const struct trace *t, const char *ids[3]);
/* Whether events of some thread may be missing strictly between from_ns
 * and to_ns: a GAP or TRAILING loss overlaps (from_ns, to_ns), or with
 * leading_too any loss does. */
bool trace_lost_within(const struct trace *t, uint64_t from_ns, uint64_t to_ns, bool leading_too);
/* Index trace.losses for trace_lost_within() (trace_load does it): 0, or
 * -1 when out of memory. */
int trace_index_losses(struct trace *t);
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
/* The stack recorded with events[event], or NULL. */
const struct trace_stack *trace_stack_of(const struct trace *t, size_t event);
/* The loaded object that contains `address`, or NULL. */
const struct trace_module *trace_module_of(const struct trace *t, uint64_t address);

#endif
