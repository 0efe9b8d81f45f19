/*
 * output.h: the file a command writes its result to (report --html,
 * export -o).
 *
 * A result replaces an older one only once it is whole: it is written
 * under a temporary name in the same folder and renamed over the old file
 * at the end, so a failed run leaves the previous result (or nothing), not
 * a half-written file that looks whole.  The new file keeps the old one's
 * permissions; a symbolic link is followed and its target replaced.
 *
 * Where a rename would change more than the contents (a file owned by
 * someone else or with other hard links), or cannot be done (a folder that
 * cannot be written, a name too long for a temporary beside it), the file
 * is written in place, as fopen() would; a failed run then leaves it
 * partly written.  Devices and fifos are written in place and never
 * removed.  A giltrace trace is never overwritten: a command line with the
 * output's name forgotten (`report --html a.gtr b.gtr`) would otherwise
 * destroy a trace.
 */
#ifndef GILTRACE_OUTPUT_H
#define GILTRACE_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

struct output {
	FILE *file;
	const char *path;      /* as given, for messages; "-" is standard output */
	char *target;          /* the file the result goes to (a link's target) */
	char *temporary;       /* the name written to until output_close(), or NULL */
	bool created;          /* written in place to a file that did not exist */
};

/* Open `path` for a result to be made from the trace at input_path.
 * Refuses input_path itself and any other trace, adding `fix` (how to name
 * the output) to the message.  Call it before reading the trace: it
 * neither reads nor changes an existing file.  Returns 0, or -1 after an
 * error message. */
int output_open(struct output *o, const char *path, const char *input_path, const char *fix);

/* Finish: flush, close (standard output is only flushed) and put the
 * result in place.  `failed` says the command failed (its message is
 * printed): the result is then dropped, and the old file kept where it was
 * not written in place.  Returns 0, or -1 after an error message or when
 * failed. */
int output_close(struct output *o, bool failed);

#endif
