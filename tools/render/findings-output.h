/*
 * findings-output.h: findings as text blocks and as JSON.
 */
#ifndef GILTRACE_FINDINGS_OUTPUT_H
#define GILTRACE_FINDINGS_OUTPUT_H

#include <stdbool.h>
#include <stdio.h>

#include "detect.h"
#include "json.h"
#include "symbolize.h"

struct symbolizer;

/* One finding's block (what findings_print_text prints for it), its stacks
 * symbolised with sym (symbolize.h), or raw addresses if sym is NULL. */
void finding_print_text(FILE *out, const struct model *m, const struct finding *f, struct symbolizer *sym);
/* finding_print_text()'s block as a string to free, or NULL (memory). */
char *finding_text(const struct model *m, const struct finding *f, struct symbolizer *sym);
/* "poll() at app.py:12": the innermost Python frame of the finding's
 * event, or NULL when it has none. */
const char *finding_python_where(const struct model *m, const struct finding *f, char *buf, size_t size);
/* Where a finding points in code: the first frame of its stack that has a
 * source file (the caller's code, usually frame 0), else its frame 0;
 * false when it has no stack. */
bool finding_where(const struct model *m, const struct finding *f, struct symbolizer *sym, struct frame_info *fi);
/* One note per module whose frames could not be symbolised. */
void findings_print_problems(FILE *out, struct symbolizer *sym);
/* One block per finding, sanitizer style, in time order, with symbolised
 * stacks (and the symbolisation's problems after them). */
void findings_print_text(FILE *out, const struct model *m, const struct findings *fs);
/* Two members of the open object: an array `key` of finding objects, then
 * "symbol_problems", the notes of findings_print_problems() as strings. */
void findings_json(struct json *j, const char *key, const struct model *m, const struct findings *fs);

/* Members of the open object saying whether the trace is truncated
 * (trace_incomplete), why and up to when: "truncated",
 * "truncated_reasons" (["cut_short", "not_closed", "out_of_space"]),
 * "truncated_why" and "truncated_at_ns" (null when complete).  check and
 * report give the same. */
void findings_json_truncation(struct json *j, const struct trace *t);
/* "provoked": the provocations of a provoked run (trace_provoked() as
 * "text", and each one's parameter); nothing for a natural run. */
void findings_json_provoked(struct json *j, const struct trace *t);

#endif
