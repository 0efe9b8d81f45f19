/*
 * snapshot.h: the hang snapshot that `giltrace run --timeout` and `stress
 * --timeout` take of a traced process before they end it (taken by
 * tools/cmd/hang-snapshot.c, read here, used by detect-hang.c).
 *
 * Where it lives.  Beside the trace, named from it: TRACE.snapshot (so
 * giltrace.gtr gets giltrace.gtr.snapshot).  A side file rather than a
 * record inside the trace: the traced process writes its trace (mapped
 * shared) until the moment it is killed, and the snapshot is taken by
 * another process while it still runs; a second writer of the trace file
 * would need a lock the shim does not take.  The trace is found first and
 * its snapshot by name, so copying a trace without its snapshot loses only
 * the stacks: exit-hang then is not reported, the trace is read as before.
 *
 * Format: UTF-8 text, one record a line, fields separated by tabs (a
 * field never holds a tab or a newline: the taker replaces them), so that
 * a person can read it too:
 *
 *   giltrace-snapshot<TAB>1
 *   pid<TAB>4242
 *   reason<TAB>timeout|finalization     what made giltrace take it
 *   limit_ns<TAB>N                      the limit that was outlived
 *   taken_realtime_ns<TAB>N             CLOCK_REALTIME when it was taken
 *   error<TAB>TEXT                      the stacks could not be had (no
 *                                       ptrace permission, ...); optional
 *   thread<TAB>TID<TAB>NAME<TAB>STATE<TAB>WCHAN
 *   frame<TAB>ADDR<TAB>MODULE<TAB>MODOFF<TAB>FUNCTION<TAB>FUNCOFF<TAB>FILE<TAB>LINE
 *   ...                                 the frames of the thread above,
 *                                       innermost first; "-" for unknown
 *   end                                 the file is complete
 *
 * Numbers are decimal, ADDR, MODOFF and FUNCOFF hex with 0x.  STATE is the
 * kernel's one-letter state (/proc/PID/task/TID/stat), WCHAN where the
 * kernel waits ("futex_wait_queue", "-").  The frames are symbolised when
 * taken (the process is alive then, with every module mapped): ADDR is
 * the frame's pc as elfutils gives it, a return address but for the
 * innermost frame.  Readers skip record types they do not know, refuse
 * another major version, and never trust a field.
 */
#ifndef GILTRACE_SNAPSHOT_H
#define GILTRACE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SNAPSHOT_MAGIC "giltrace-snapshot"
#define SNAPSHOT_VERSION 1
#define SNAPSHOT_SUFFIX ".snapshot"
/* What the reader keeps at most: a thread's frames, the threads. */
#define SNAPSHOT_MAX_FRAMES 128
#define SNAPSHOT_MAX_THREADS 4096

struct snapshot_frame {
	uint64_t address;
	char *module;                /* base name, or NULL */
	uint64_t module_offset;
	char *function;              /* or NULL */
	uint64_t function_offset;
	char *file;                  /* or NULL */
	int line;                    /* 0 unknown */
};

struct snapshot_thread {
	int32_t tid;
	char name[17];
	char state;                  /* 'S', 'R', 'D', 't' (stopped by the tracer), '?' */
	char wchan[48];
	struct snapshot_frame *frames;
	size_t frame_count;
};

enum snapshot_reason { SNAPSHOT_TIMEOUT, SNAPSHOT_FINALIZATION };

struct snapshot {
	int32_t pid;
	enum snapshot_reason reason;
	uint64_t limit_ns;
	uint64_t taken_realtime_ns;
	char *error;                 /* why no stacks, or NULL */
	bool complete;               /* the "end" line was there */
	struct snapshot_thread *threads;
	size_t thread_count;
};

/* The snapshot's name for a trace: TRACE.snapshot; NULL when out of memory. */
char *snapshot_path_of(const char *trace_path);

/* Read the snapshot beside trace_path.  Returns 1 and fills *s when there
 * is one, 0 when there is none (no file), -1 with a one-line reason in err
 * when it cannot be used (then *s is empty).  Free with snapshot_free(). */
int snapshot_read(const char *trace_path, struct snapshot *s, char *err, size_t errlen);
void snapshot_free(struct snapshot *s);

/* The thread of that tid, or NULL. */
const struct snapshot_thread *snapshot_thread_of(const struct snapshot *s, int32_t tid);

#endif
