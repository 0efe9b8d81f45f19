/*
 * analysis.c: open and analyse a trace for a command.  See analysis.h.
 */
#include "analysis.h"

#include <stdio.h>
#include <string.h>

int analysis_open(struct analysis *a, const char *path, enum analysis_use use, char *err, size_t errlen)
{
	memset(a, 0, sizeof *a);
	if (trace_open(&a->trace, path, err, errlen) != 0)
		return -1;
	if (analyse(&a->trace, &a->model, &a->findings, use == ANALYSIS_WINDOWS ? ANALYSE_CHECKPOINTS : 0) != 0) {
		snprintf(err, errlen, "out of memory analysing '%s'", path);
		return -1;
	}
	return 0;
}

void analysis_close(struct analysis *a)
{
	findings_free(&a->findings);
	model_free(&a->model);
	trace_close(&a->trace);
}
