/*
 * report-output.h: `giltrace report` as text (report-text.c) and as JSON
 * (report-json.c), both laying out the one report of report-data.h; the
 * page is html-report.h's.
 */
#ifndef GILTRACE_REPORT_OUTPUT_H
#define GILTRACE_REPORT_OUTPUT_H

#include <stdio.h>

#include "json.h"
#include "report-data.h"

/* The text report, then the findings' blocks (findings-output.h). */
void report_print_text(FILE *out, const struct report *r);
/* The report as one JSON object (an array element or the document). */
void report_json(struct json *j, const struct report *r);

#endif
