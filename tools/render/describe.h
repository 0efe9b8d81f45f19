/*
 * describe.h: short descriptions of a trace's interpreter, shared by the
 * views that name it (report's words are report-data.c's).
 */
#ifndef GILTRACE_DESCRIBE_H
#define GILTRACE_DESCRIBE_H

#include <stddef.h>

#include "trace.h"

/* "3.11.2" from "3.11.2 (main, ...)", else from PY_VERSION_HEX, else "";
 * returns buf. */
const char *describe_python_version(const struct gtr_file_header *h, char *buf, size_t size);

#endif
