/*
 * describe.c: short descriptions of a trace's interpreter.  See describe.h.
 */
#include "describe.h"

#include <stdio.h>
#include <string.h>

const char *describe_python_version(const struct gtr_file_header *h, char *buf, size_t size)
{
	size_t n = strcspn(h->py_version, " ");
	snprintf(buf, size, "%.*s", (int)n, h->py_version);
	if (!buf[0] && h->py_version_hex)
		snprintf(buf, size, "%u.%u.%u", h->py_version_hex >> 24, h->py_version_hex >> 16 & 0xff,
		         h->py_version_hex >> 8 & 0xff);
	return buf;
}
