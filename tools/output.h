/*
 * output.h: the file a command writes its result to (report --html,
 * export -o).
 *
 * Nothing is lost when a command fails: a regular file is written under a
 * temporary name next to it and renamed over the old one only once it is
 * whole, so a failed run leaves the previous result (or nothing) and never
 * a half-written file that looks whole; the result keeps the old file's
 * permissions.  What is not a regular file (a device such as /dev/full, a
 * fifo, a symbolic link), or a file in a folder that cannot be written, is
 * written in place and never removed.  A giltrace trace is never overwritten: a command
 * line with the output's name forgotten (`report --html a.gtr b.gtr`)
 * would otherwise destroy a trace.
 */
#ifndef GILTRACE_OUTPUT_H
#define GILTRACE_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

struct output {
	FILE *file;
	const char *path;      /* as given; "-" is standard output */
	char *temporary;       /* the name written to until output_close(), or NULL */
};

/* Open `path` for a result made from the trace at input_path.  Refuses
 * input_path itself and any other trace, adding `fix` (how to name the
 * output) to the message.  Returns 0, or -1 after an error message. */
int output_open(struct output *o, const char *path, const char *input_path, const char *fix);

/* Finish: flush, close (standard output is only flushed) and put the file
 * in place.  `failed` says the command failed already (its message is
 * printed): the result is then dropped.  Returns 0, or -1 after an error
 * message or when failed. */
int output_close(struct output *o, bool failed);

#endif
