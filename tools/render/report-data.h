/*
 * report-data.h: what `giltrace report` says of one trace, worded once.
 *
 * report_build() reads an analysis (analysis.h: the trace, its model and
 * its findings) and words every sentence report's outputs share: the
 * interpreter and the process, whether the evidence is complete, what the
 * trace lost, a line per GIL, the handoffs and the contention, the cells
 * of the thread table, each finalization epoch and the model's self-check.
 * The renderers (report-output.h for text and JSON, html-report.h for the
 * page) add layout only, so that the three always say the same; the JSON
 * takes its numbers from the model the report points to, row by row.
 */
#ifndef GILTRACE_REPORT_DATA_H
#define GILTRACE_REPORT_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "analysis.h"

/* The thread table's columns, in order. */
enum report_column {
	REPORT_COL_TID,
	REPORT_COL_NAME,
	REPORT_COL_HOLD,
	REPORT_COL_WAIT,
	REPORT_COL_BLOCKED,        /* shown when a thread waited in the parking lot (3.13+) */
	REPORT_COL_ACQUISITIONS,
	REPORT_COL_DROP_REQUESTS,
	REPORT_COL_FORCED_SWITCHES,
	REPORT_COL_GILS,           /* shown when there are several GILs (subinterpreters) */
	REPORT_COL_EXIT,
	REPORT_COLUMNS
};

struct report_column_info {
	const char *title;         /* "drop requests" */
	const char *short_title;   /* "drop-req": where the width is counted */
	bool numeric;              /* right-aligned */
};

extern const struct report_column_info report_columns[REPORT_COLUMNS];

/* Room for a cell: the longest is an exit, "pthread_exit holding GIL at
 * +1.234 s (older events dropped)". */
#define REPORT_CELL_SIZE 96

struct report_thread_row {
	int thread;                /* index in the model */
	char cell[REPORT_COLUMNS][REPORT_CELL_SIZE];
};

struct report_gil {
	unsigned index;
	const struct model_gil *gil;
	char line[192];            /* "GIL 0 (main) at 0x7f..: held 12.3 ms (45.6%), idle ..." */
	char lost[160];            /* "lost 1.2 ms (events missing in ...)", or "" */
	char enabled[4400];        /* free-threaded builds: "the GIL is disabled; ...", else "" */
};

/* A list of threads in a finalization section: "alive then: main (12), 13". */
struct report_threads {
	const char *label;         /* "alive then" */
	const int *threads;        /* model thread indices, for the JSON */
	size_t count;
	char *text;                /* their labels, ", "-separated, or "none" */
};

enum { REPORT_ALIVE, REPORT_HELD, REPORT_WAITED, REPORT_THREAD_LISTS };

/* A finalization section: one per epoch, or one saying none was seen. */
struct report_finalization {
	const struct model_epoch *epoch; /* NULL: none seen */
	char heading[64];          /* "finalization", or "finalization 2 of 3" */
	char said[256];            /* "started at +6.49 ms by thread main (12) (...)",
	                              "not seen" */
	struct report_threads lists[REPORT_THREAD_LISTS]; /* with an epoch */
	char ended[96];            /* "ended at +8.27 ms, when the runtime was ...",
	                              told when the trace has several; else "" */
};

struct report {
	const struct trace *t;
	const struct model *m;
	const struct findings *fs;

	/* the interpreter and the process */
	char version[128];         /* "3.12.1", "" unknown */
	char build[96];            /* "shared, debug" */
	char python[232];          /* "3.12.1 (shared, debug)" */
	const char *mode;          /* "full", "ring" */
	const char *clock;         /* "tsc", "monotonic" */
	char process[192];         /* "pid 12, 3 threads, 4567 events, wall 1.2 s, full mode" */
	char writer_buf[80];
	const char *writer;        /* the giltrace that wrote it, NULL unknown (older) */
	const char *provoked;      /* "exit-delay=1s, poison" (trace_provoked), NULL:
	                              a natural run */
	char provoked_buf[256];

	/* how complete the evidence is */
	bool truncated;            /* trace_incomplete() */
	char truncated_why[320];   /* trace_incomplete_why() */
	char truncated_read[96];   /* "every event up to +X (the last one committed) was read" */
	char losses[2][256];       /* what was lost and what the statistics leave out */
	size_t loss_count;

	struct report_gil *gils;   /* the GILs seen, by index */
	size_t gil_count;
	bool column_shown[REPORT_COLUMNS];
	char no_gil[160];          /* free-threaded build, no GIL seen: says so; else "" */
	char handoffs[64];         /* "handoffs: 123, latency" */
	char latency[4][48];       /* "p50 1.2 us", "p90 ...", "p99 ...", "max ..." */
	double contention_ratio;   /* 0 to 1 */
	char contention[96];       /* "contention: 12.3% of acquisitions waited for another holder" */

	struct report_thread_row *rows; /* one per thread, in the model's order */
	size_t row_count;

	struct report_finalization *finalizations; /* at least one */
	size_t finalization_count;

	const char *model_errors_heading; /* "model self-check FAILED (...):", NULL none */
	char findings_count[64];   /* "1 error, 0 notes" */
};

/* Word the report of a->trace.  Returns 0, or -1 when out of memory;
 * free with report_free() either way.  r points into a until then. */
int report_build(struct report *r, const struct analysis *a);
void report_free(struct report *r);

#endif
