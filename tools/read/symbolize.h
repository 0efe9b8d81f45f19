/*
 * symbolize.h: native stack frames to function, file:line and module, with
 * elfutils (libdwfl), offline.
 *
 * The trace's module map gives each loaded object's path, load address and
 * build-id.  A module's file is the one at its path if its build-id matches
 * (or the trace recorded none); else one with the same name in a directory
 * of GILTRACE_SYMBOL_PATH (colon-separated), or in a .build-id tree there
 * or under /usr/lib/debug, whose build-id matches: so a trace can be read
 * on another machine that has the same binaries.  Separate debug
 * information is found the standard way (.gnu_debuglink, build-id).
 * A frame whose module has no matching file is shown as module+offset.
 */
#ifndef GILTRACE_SYMBOLIZE_H
#define GILTRACE_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trace.h"

struct frame_info {
	uint64_t address;            /* as recorded (a return address) */
	const char *module;          /* base name of the object, or NULL */
	uint64_t module_offset;      /* address - its load address */
	const char *function;        /* or NULL */
	uint64_t function_offset;    /* from the function's start */
	const char *file;            /* source file, or NULL */
	int line;                    /* 0 if unknown */
};

struct symbolizer;

/* Never fails for want of files (frames are then module+offset); NULL
 * only when out of memory. */
struct symbolizer *symbolizer_new(const struct trace *t);
void symbolizer_free(struct symbolizer *s);

/* Describe a return address.  The strings live as long as s. */
void symbolizer_lookup(struct symbolizer *s, uint64_t address, struct frame_info *out);

/* Modules that frames pointed into but whose file could not be had, one
 * line each ("libfoo.so: not found (build-id ...)"); valid after lookups. */
size_t symbolizer_problems(const struct symbolizer *s, const char *const **lines);

#endif
