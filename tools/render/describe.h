/*
 * describe.h: short descriptions of a trace's interpreter and threads,
 * shared by report's outputs (text, JSON, HTML) so that they agree.
 */
#ifndef GILTRACE_DESCRIBE_H
#define GILTRACE_DESCRIBE_H

#include <stddef.h>

#include "model.h"

/* "3.11.2" from "3.11.2 (main, ...)", else from PY_VERSION_HEX, else "";
 * returns buf. */
const char *describe_python_version(const struct gtr_file_header *h, char *buf, size_t size);
/* "static, debug, internal C-API calls seen"; returns buf. */
const char *describe_build(const struct gtr_file_header *h, char *buf, size_t size);
/* "pthread_exit holding GIL at +12.3 ms", or "running at end" (a constant,
 * not buf). */
const char *describe_thread_exit(const struct model_thread *th, char *buf, size_t size);
/* The share of acquisitions that waited for another holder, 0 to 1. */
double describe_contention_ratio(const struct model *m);

#endif
