/*
 * window.h: which part of a trace a picture shows (timeline, HTML report).
 *
 * By default the window is "around finalization" when the trace has one:
 * from as long before its start as the run went on after it (at least
 * 2 ms) to the end of the trace, so the last moments of the daemon threads
 * and the finalizing thread fill the picture.  Without a finalization it is
 * the whole run.  --from and --to override either end.
 */
#ifndef GILTRACE_WINDOW_H
#define GILTRACE_WINDOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model.h"

enum window_around { WINDOW_AUTO, WINDOW_FINALIZE, WINDOW_WHOLE };

struct window_request {
	enum window_around around;
	bool has_from, has_to;
	uint64_t from_ns, to_ns;    /* relative to the trace start */
};

/* "12.5ms", "300us", "2s", "150ns" (a unit is required) into ns.
 * Returns 0, or -1 with a reason in err. */
int window_parse_time(const char *text, uint64_t *ns, char *err, size_t errlen);
/* "finalize" or "whole" into r->around; -1 with a reason in err. */
int window_parse_around(const char *text, struct window_request *r, char *err, size_t errlen);
/* The window for model m: 0, or -1 with a reason in err (an empty or
 * reversed window, "finalize" without a finalization). */
int window_choose(const struct model *m, const struct window_request *r, uint64_t *from_ns, uint64_t *to_ns,
                  char *err, size_t errlen);

#endif
