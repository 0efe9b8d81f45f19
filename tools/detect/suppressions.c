/*
 * suppressions.c: the rules of a suppressions file.  See suppressions.h.
 */
#include "suppressions.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbolize.h"

static bool known_id(const char *id)
{
	if (strcmp(id, "*") == 0)
		return true;
	for (unsigned k = 0; k < DETECT_COUNT; k++)
		if (strcmp(id, detectors[k].id) == 0)
			return true;
	return false;
}

/* One line: false with the reason when it is not a rule. */
static bool parse_line(struct suppressions *s, char *text, unsigned line, char *err, size_t size)
{
	char *hash = strchr(text, '#');
	if (hash)
		*hash = '\0';
	char *start = text + strspn(text, " \t");
	char *end = start + strlen(start);
	while (end > start && strchr(" \t\r\n", end[-1]))
		*--end = '\0';
	if (!*start)
		return true;
	char *colon = strchr(start, ':');
	if (!colon || colon == start || !colon[1]) {
		snprintf(err, size, "%s:%u: '%s' is not a rule: write ID:PATTERN (a finding id or *, a glob)", s->path,
		         line, start);
		return false;
	}
	*colon = '\0';
	if (!known_id(start)) {
		snprintf(err, size, "%s:%u: '%s' is not a finding id (docs/findings.md lists them; * for any)", s->path,
		         line, start);
		return false;
	}
	struct suppression_rule *grown = realloc(s->rules, (s->count + 1) * sizeof *grown);
	if (!grown) {
		snprintf(err, size, "out of memory");
		return false;
	}
	s->rules = grown;
	struct suppression_rule *r = &s->rules[s->count];
	r->id = strdup(start);
	r->pattern = strdup(colon + 1);
	r->line = line;
	if (!r->id || !r->pattern) {
		free(r->id);
		free(r->pattern);
		snprintf(err, size, "out of memory");
		return false;
	}
	s->count++;
	return true;
}

int suppressions_load(struct suppressions *s, const char *path, char *err, size_t size)
{
	memset(s, 0, sizeof *s);
	s->path = strdup(path);
	FILE *f = fopen(path, "r");
	if (!s->path || !f) {
		snprintf(err, size, "cannot read the suppressions '%s': %s", path, s->path ? strerror(errno) : "out of memory");
		if (f)
			fclose(f);
		suppressions_free(s);
		return -1;
	}
	char *text = NULL;
	size_t cap = 0;
	unsigned line = 0;
	bool ok = true;
	while (ok && getline(&text, &cap, f) >= 0)
		ok = parse_line(s, text, ++line, err, size);
	free(text);
	fclose(f);
	if (!ok) {
		suppressions_free(s);
		return -1;
	}
	return 0;
}

static bool matches(const char *pattern, const char *candidate)
{
	if (!candidate || !*candidate)
		return false;
	if (fnmatch(pattern, candidate, 0) == 0)
		return true;
	const char *slash = strrchr(candidate, '/');
	return slash && fnmatch(pattern, slash + 1, 0) == 0;
}

static bool frame_matches(const char *pattern, const struct frame_info *fi)
{
	return matches(pattern, fi->function) || matches(pattern, fi->module) || matches(pattern, fi->file);
}

/* Whether the rule's pattern matches a frame of f's stack, its caller or a
 * frame of its Python stack. */
static bool finding_matches(const char *pattern, const struct model *m, const struct finding *f,
                            struct symbolizer *sym)
{
	const struct trace_stack *st = trace_stack_of(m->trace, f->stack_event);
	struct frame_info fi;
	for (uint32_t i = 0; st && i < st->count; i++) {
		symbolizer_lookup(sym, st->frames[i], &fi);
		if (frame_matches(pattern, &fi))
			return true;
	}
	if (f->caller) {
		symbolizer_lookup(sym, f->caller, &fi);
		if (frame_matches(pattern, &fi))
			return true;
	}
	/* a Python file or function: the thread's Python frames */
	const struct trace_py_stack *ps = trace_py_stack_of(m->trace, f->stack_event);
	for (uint32_t i = 0; ps && i < ps->count; i++)
		if (matches(pattern, ps->frames[i].function) || matches(pattern, ps->frames[i].file))
			return true;
	return false;
}

size_t suppressions_apply(struct suppressions *s, const struct model *m, struct findings *fs)
{
	if (!s || !s->count || !fs->count)
		return 0;
	struct symbolizer *sym = symbolizer_new(m->trace);
	if (!sym)
		return 0;
	size_t kept = 0, taken = 0;
	for (size_t i = 0; i < fs->count; i++) {
		struct finding *f = &fs->items[i];
		const char *id = detectors[f->kind].id;
		bool hit = false;
		for (size_t r = 0; r < s->count && !hit; r++)
			hit = (strcmp(s->rules[r].id, "*") == 0 || strcmp(s->rules[r].id, id) == 0) &&
			      finding_matches(s->rules[r].pattern, m, f, sym);
		if (!hit) {
			fs->items[kept++] = *f;
			continue;
		}
		taken++;
		if (detectors[f->kind].severity == SEVERITY_ERROR)
			fs->errors--;
		else
			fs->notes--;
		free(f->roles);
	}
	fs->count = kept;
	symbolizer_free(sym);
	return taken;
}

void suppressions_free(struct suppressions *s)
{
	for (size_t i = 0; i < s->count; i++) {
		free(s->rules[i].id);
		free(s->rules[i].pattern);
	}
	free(s->rules);
	free(s->path);
	memset(s, 0, sizeof *s);
}
