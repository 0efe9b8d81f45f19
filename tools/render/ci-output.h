/*
 * ci-output.h: check's findings for CI systems: JUnit XML (buildbot,
 * GitLab, Jenkins test reports) and SARIF 2.1.0 (code-scanning views).
 *
 * Both are written as check walks its traces: begin, one call per trace
 * (read, or unusable), end.  JUnit: one <testsuite> per trace, one
 * <testcase> per finding (an error finding fails it; a note passes with
 * its text), one passing "no error findings" case for a clean trace, and an
 * <error> case for an unusable or incomplete one, so that the report fails
 * exactly where `check`'s exit status does.  SARIF: one run, every
 * detector a rule, one result per finding, located at the first stack
 * frame with a source file; unusable traces are the invocation's
 * notifications.
 */
#ifndef GILTRACE_CI_OUTPUT_H
#define GILTRACE_CI_OUTPUT_H

#include <stdio.h>

#include "detect.h"
#include "json.h"

enum ci_format { CI_JUNIT, CI_SARIF };

struct ci_output;

/* NULL when out of memory. */
struct ci_output *ci_begin(enum ci_format format, FILE *out);
/* A trace read: its findings (already filtered by severity). */
void ci_trace(struct ci_output *c, const char *path, const struct model *m, const struct findings *fs);
/* A trace that could not be read, and why. */
void ci_unusable(struct ci_output *c, const char *path, const char *why);
/* Writes what is left and frees c. */
void ci_end(struct ci_output *c);

#endif
