/*
 * output.h: the file a command writes its result to (report --html,
 * export -o).
 *
 * A result replaces an older one only once it is whole: it is written
 * under a temporary name in the same folder and renamed over the old file
 * at the end, so a failed run leaves the previous result (or nothing), not
 * a half-written file that looks whole.  The new file keeps the old one's
 * permissions and group; a symbolic link is followed and its destination
 * replaced (or created).  A file bind-mounted in place, which cannot be
 * renamed over, is filled from the temporary instead.  Nothing is synced
 * to disk: after a power failure the file may be empty.
 *
 * Where a rename would change more than the contents (a file owned by
 * someone else, with other hard links, ACLs or other extended attributes)
 * or no temporary can be made beside it (a folder that cannot be written),
 * the file is written in place, as fopen() would, but truncated only at
 * the end: a run that fails before writing leaves it as it was, one that
 * fails while writing leaves it partly overwritten.  Devices and fifos are
 * written in place and never removed.  /dev/stdout, /dev/stderr and
 * /dev/fd/N are written through the command's own descriptor, so that
 * `3>>log` appends.  A giltrace trace is never
 * overwritten: a command line with the output's name forgotten
 * (`report --html a.gtr b.gtr`) would otherwise destroy a trace.
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
	bool created;          /* written in place to a file that did not exist:
	                          removed again on failure */
	bool through_descriptor; /* /dev/fd/N: written through a copy of N */
};

/* Open `path` for a result to be made from the trace at input_path.
 * Refuses input_path itself, any other trace and what is not a file name,
 * adding `fix` (how to name the output) to the message.  Call it before
 * reading the trace: it changes no existing file (it reads the first
 * bytes of a regular one, to tell a trace).  Returns 0, or -1 after an
 * error message. */
int output_open(struct output *o, const char *path, const char *input_path, const char *fix);

/* Finish: flush, close (standard output is only flushed) and put the
 * result in place.  `failed` says the command failed (its message is
 * printed): the result is then dropped, and the old file kept where it was
 * not written in place.  Returns 0, or -1 after an error message or when
 * failed. */
int output_close(struct output *o, bool failed);

#endif
