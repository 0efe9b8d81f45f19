/*
 * window.c: choosing the window of a picture.  See window.h.
 */
#include "window.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIN_LEAD_NS 2000000u

int window_parse_time(const char *text, uint64_t *ns, char *err, size_t errlen)
{
	static const struct {
		const char *suffix;
		double ns;
	} units[] = { { "ns", 1 }, { "us", 1e3 }, { "ms", 1e6 }, { "s", 1e9 } };
	char *end;
	errno = 0;
	double v = strtod(text, &end);
	if (end == text || errno || !isfinite(v) || v < 0) {
		snprintf(err, errlen, "'%s' is not a time; write it like 12ms, 1.5s, 300us", text);
		return -1;
	}
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		double total = v * units[i].ns;
		if (total >= 1.8e19) {
			snprintf(err, errlen, "time '%s' is too large", text);
			return -1;
		}
		*ns = (uint64_t)llround(total);
		return 0;
	}
	snprintf(err, errlen, "time '%s' needs a unit: ns, us, ms or s (like 12ms)", text);
	return -1;
}

int window_parse_around(const char *text, struct window_request *r, char *err, size_t errlen)
{
	if (!strcmp(text, "finalize"))
		r->around = WINDOW_FINALIZE;
	else if (!strcmp(text, "whole"))
		r->around = WINDOW_WHOLE;
	else {
		snprintf(err, errlen, "--around takes 'finalize' or 'whole', not '%s'", text);
		return -1;
	}
	return 0;
}

int window_choose(const struct model *m, const struct window_request *r, uint64_t *from_ns, uint64_t *to_ns,
                  char *err, size_t errlen)
{
	uint64_t end = m->wall_ns, from = 0, to = end;
	enum window_around around = r->around;
	if (around == WINDOW_AUTO)
		around = m->finalization.seen ? WINDOW_FINALIZE : WINDOW_WHOLE;
	if (around == WINDOW_FINALIZE) {
		if (!m->finalization.seen) {
			snprintf(err, errlen, "the trace has no finalization; use --around whole or --from/--to");
			return -1;
		}
		uint64_t start = m->finalization.start_ns;
		uint64_t lead = end - start > MIN_LEAD_NS ? end - start : MIN_LEAD_NS;
		from = start > lead ? start - lead : 0;
	}
	if (r->has_from)
		from = r->from_ns;
	if (r->has_to)
		to = r->to_ns;
	if (from >= to) {
		char a[32], b[32];
		snprintf(a, sizeof a, "%.3f ms", (double)from / 1e6);
		snprintf(b, sizeof b, "%.3f ms", (double)to / 1e6);
		snprintf(err, errlen, "the window from %s to %s is empty (the trace covers 0 to %.3f ms)", a, b,
		         (double)end / 1e6);
		return -1;
	}
	*from_ns = from;
	*to_ns = to;
	return 0;
}
