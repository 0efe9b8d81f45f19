/*
 * analysis.h: a trace, read and analysed, as every command takes it.
 *
 * analysis_open() opens the trace (trace.h) and runs its one replay with
 * the model and the detectors as visitors (analyse(), detect.h); that
 * first walk also completes the trace (its notes, losses and end).  The
 * views walk it again through spans.h when they draw lanes.
 */
#ifndef GILTRACE_ANALYSIS_H
#define GILTRACE_ANALYSIS_H

#include "detect.h"
#include "model.h"
#include "trace.h"

struct analysis {
	struct trace trace;
	struct model model;
	struct findings findings;
};

/* What the command will do with it. */
enum analysis_use {
	ANALYSIS_WHOLE,   /* read it whole: statistics, findings, exports */
	ANALYSIS_WINDOWS, /* also draw windows of it (spans.h): the replay keeps
	                     checkpoints to start those from */
};

/* 0, or -1 with a one-line reason in err: the file is not a usable trace,
 * or there was not memory enough to analyse it.  Close with
 * analysis_close() either way. */
int analysis_open(struct analysis *a, const char *path, enum analysis_use use, char *err, size_t errlen);
void analysis_close(struct analysis *a);

#endif
