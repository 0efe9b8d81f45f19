/*
 * suppressions.h: rules that take findings out of check's output and exit
 * status, as TSan's and valgrind's suppression files do.
 *
 * A file holds one rule per line, `ID:PATTERN`: ID a finding id
 * (docs/findings.md) or `*` for any, PATTERN a shell glob (fnmatch) matched
 * against every frame of the finding's stack (its function, its module's
 * file name, its source file's path and file name) and against the module
 * and function of the C-API call's caller.  `#` starts a comment; blank
 * lines are ignored.  Suppressed findings are counted, never shown.
 * (Python files are not matched: giltrace has no Python stacks yet.)
 */
#ifndef GILTRACE_SUPPRESSIONS_H
#define GILTRACE_SUPPRESSIONS_H

#include <stddef.h>

#include "detect.h"

struct suppression_rule {
	char *id;                    /* a finding id, or "*" */
	char *pattern;
	unsigned line;               /* in the file, for messages */
};

struct suppressions {
	char *path;
	struct suppression_rule *rules;
	size_t count;
};

/* Read the file: 0, or -1 with the reason (the line and what is wrong,
 * or why the file cannot be read) in err. */
int suppressions_load(struct suppressions *s, const char *path, char *err, size_t size);
/* Take the findings a rule matches out of fs (its counts too); returns how
 * many.  Frames are symbolised for the purpose. */
size_t suppressions_apply(struct suppressions *s, const struct model *m, struct findings *fs);
void suppressions_free(struct suppressions *s);

#endif
