/*
 * export-chrome.h: `giltrace export --format chrome`: a trace as Chrome
 * trace-event JSON, for ui.perfetto.dev and chrome://tracing.  Design
 * notes (tracks, slices, flows, marks) in export-chrome.c.
 */
#ifndef GILTRACE_EXPORT_CHROME_H
#define GILTRACE_EXPORT_CHROME_H

#include <stdio.h>

#include "detect.h"
#include "model.h"

/* Write m (and its trace m->trace) and its findings to out as one JSON
 * document.  Returns 0, -ENOMEM when out of memory, or minus the errno of
 * the first write that failed; what was written is then incomplete. */
int export_chrome_write(FILE *out, const struct model *m, const struct findings *fs);

#endif
