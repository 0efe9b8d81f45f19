/*
 * describe.c: short descriptions for report's outputs.  See describe.h.
 */
#include "describe.h"

#include <stdio.h>
#include <string.h>

#include "format.h"

const char *describe_python_version(const struct gtr_file_header *h, char *buf, size_t size)
{
	size_t n = strcspn(h->py_version, " ");
	snprintf(buf, size, "%.*s", (int)n, h->py_version);
	if (!buf[0] && h->py_version_hex)
		snprintf(buf, size, "%u.%u.%u", h->py_version_hex >> 24, h->py_version_hex >> 16 & 0xff,
		         h->py_version_hex >> 8 & 0xff);
	return buf;
}

const char *describe_build(const struct gtr_file_header *h, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s%s", h->py_build & GTR_BUILD_SHARED ? "shared" : "static",
	         h->py_build & GTR_BUILD_DEBUG ? ", debug" : "",
	         h->py_build & GTR_BUILD_FREE_THREADED ? ", free-threaded" : "",
	         h->py_build & GTR_BUILD_PLT_ROUTED ? ", internal C-API calls seen" : "");
	return buf;
}

const char *describe_thread_exit(const struct model_thread *th, char *buf, size_t size)
{
	char at[32];
	if (th->exit == THREAD_END_NONE)
		return "running at end";
	snprintf(buf, size, "%s%s at +%s", thread_end_name(th->exit), th->exit_held_gil ? " holding GIL" : "",
	         format_duration(at, sizeof at, th->exit_ns));
	return buf;
}

double describe_contention_ratio(const struct model *m)
{
	return m->acquisitions ? (double)m->contended_acquisitions / (double)m->acquisitions : 0.0;
}
