/*
 * findings-output.h: findings as text blocks and as JSON.
 */
#ifndef GILTRACE_FINDINGS_OUTPUT_H
#define GILTRACE_FINDINGS_OUTPUT_H

#include <stdio.h>

#include "detect.h"
#include "json.h"

/* One finding's block (what findings_print_text prints for it). */
void finding_print_text(FILE *out, const struct model *m, const struct finding *f);
/* One block per finding, sanitizer style, in time order. */
void findings_print_text(FILE *out, const struct model *m, const struct findings *fs);
/* An array `key` of finding objects. */
void findings_json(struct json *j, const char *key, const struct model *m, const struct findings *fs);

#endif
