/*
 * shim-env.h: starting a program under the shim, as `run` and `stress` do:
 * where libgiltrace.so is, the LD_PRELOAD that puts it first, and the
 * GILTRACE_OPTIONS that name the trace.
 */
#ifndef GILTRACE_SHIM_ENV_H
#define GILTRACE_SHIM_ENV_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#define SHIM_NAME "libgiltrace.so"
/* the shim's limit for output= (shim_options.output) */
#define SHIM_OUTPUT_MAX 4096

/* libgiltrace.so: $GILTRACE_SHIM, next to this executable, or in
 * ../lib/giltrace relative to it (an installed layout).  0, or -1 after
 * printing why. */
int shim_find(char out[PATH_MAX]);

/* The value of LD_PRELOAD for a child: the shim, then what our own
 * LD_PRELOAD holds.  Malloc'ed; NULL when out of memory. */
char *shim_preload_value(const char *shim);

/* GILTRACE_OPTIONS for a child writing its trace to `output` (absolute,
 * without ':'), with the at-exit check off (the command reads the traces
 * itself): the user's GILTRACE_OPTIONS first (stacks=, stack_depth=), then
 * ours, which win (the shim takes the last value of a key).  0, or -1 when
 * they do not fit in size bytes. */
int shim_options(char *out, size_t size, const char *output, const char *mode, unsigned long ring_size,
                 bool verbose);
/* Append ":key=value" to options made by shim_options() (--provoke's
 * provoke=); value must hold no ':'.  0, or -1 when it does not fit. */
int shim_options_add(char *options, size_t size, const char *key, const char *value);

#endif
