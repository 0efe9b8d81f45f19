/*
 * py-stack.c: the Python stacks of a trace (PY_STACK events), decoded once
 * by the first walk into frames with their own strings, and found by the
 * index of the event they were recorded with.
 *
 * A payload is checked word by word against its count: a frame whose
 * lengths run past the payload ends the stack there (end 0, "damaged"),
 * never a read beyond it.  Names are sanitised for printing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trace-private.h"

static char *copy_text(const char *bytes, size_t len)
{
	char *s = malloc(len + 1);
	if (!s)
		return NULL;
	memcpy(s, bytes, len);
	s[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if (!s[i])
			s[i] = '?'; /* a NUL inside the bytes: not the end */
	trace_sanitize_string(s);
	return s;
}

static void free_frames(struct trace_py_frame *frames, uint32_t count)
{
	for (uint32_t i = 0; i < count; i++) {
		free(frames[i].function);
		free(frames[i].file);
	}
	free(frames);
}

int trace_keep_py_stack(struct trace *t, size_t event, const uint64_t *words, uint32_t count)
{
	if (t->py_stack_count == t->py_stack_cap) {
		size_t cap = t->py_stack_cap ? 2 * t->py_stack_cap : 16;
		struct trace_py_stack *grown = realloc(t->py_stacks, cap * sizeof *grown);
		if (!grown)
			return -1;
		t->py_stacks = grown;
		t->py_stack_cap = cap;
	}
	struct trace_py_stack ps = { .event = event, .end = gtr_py_stack_end(words[0]),
		                     .source = gtr_py_stack_source(words[0]) };
	unsigned promised = gtr_py_stack_frames(words[0]);
	if (ps.end == GTR_PY_STACK_UNREADABLE)
		ps.err = gtr_py_stack_errno(words[0]);
	if (ps.end < GTR_PY_STACK_COMPLETE || ps.end > GTR_PY_STACK_BUSY)
		ps.end = 0;
	if (promised && !(ps.frames = calloc(promised, sizeof *ps.frames)))
		return -1;
	ps.tstate = count > 1 ? words[1] : 0;
	uint32_t at = 2;
	while (ps.count < promised) {
		if (at >= count) {
			ps.end = 0; /* fewer frames than the status word said */
			break;
		}
		uint64_t w = words[at];
		unsigned fn_len = gtr_py_frame_function_len(w), file_len = gtr_py_frame_file_len(w);
		uint32_t text_words = (fn_len + file_len + 7u) / 8u;
		if (text_words > count - at - 1u) {
			ps.end = 0;
			break;
		}
		const char *text = (const char *)(words + at + 1);
		struct trace_py_frame *f = &ps.frames[ps.count];
		f->line = gtr_py_frame_line(w);
		f->flags = gtr_py_frame_flags(w);
		f->function = copy_text(text, fn_len);
		f->file = copy_text(text + fn_len, file_len);
		ps.count++;
		if (!f->function || !f->file) {
			free_frames(ps.frames, ps.count);
			return -1;
		}
		at += 1u + text_words;
	}
	t->py_stacks[t->py_stack_count++] = ps;
	return 0;
}

void trace_py_stacks_free(struct trace *t)
{
	for (size_t i = 0; i < t->py_stack_count; i++)
		free_frames(t->py_stacks[i].frames, t->py_stacks[i].count);
	free(t->py_stacks);
	t->py_stacks = NULL;
	t->py_stack_count = t->py_stack_cap = 0;
}

const struct trace_py_stack *trace_py_stack_of(const struct trace *t, size_t event)
{
	_Static_assert(offsetof(struct trace_py_stack, event) == 0, "trace_first_at_event reads it first");
	if (event == SIZE_MAX)
		return NULL;
	size_t i = trace_first_at_event(t->py_stacks, t->py_stack_count, sizeof *t->py_stacks, event);
	return i < t->py_stack_count && t->py_stacks[i].event == event ? &t->py_stacks[i] : NULL;
}

const char *trace_py_stack_end_phrase(const struct trace_py_stack *ps, char *buf, size_t size)
{
	static const char *const phrases[] = {
		[0] = "damaged in the trace",
		[GTR_PY_STACK_COMPLETE] = "",
		[GTR_PY_STACK_DEPTH] = "more frames not recorded (py_stack_depth=)",
		[GTR_PY_STACK_ROOM] = "more frames not recorded (no room in the event)",
		[GTR_PY_STACK_UNREADABLE] = "unreadable",
		[GTR_PY_STACK_NO_THREAD_STATE] = "the thread had no thread state the shim could find",
		[GTR_PY_STACK_NO_LAYOUT] = "not read: giltrace knows no frame layout for this interpreter",
		[GTR_PY_STACK_BAD_FRAME] = "a frame that made no sense ended the walk (a torn frame)",
		[GTR_PY_STACK_BUSY] = "not read: the crash interrupted another Python stack's reading",
	};
	if (ps->end == GTR_PY_STACK_UNREADABLE)
		snprintf(buf, size, "unreadable%s: %s (a freed or torn thread state or frame)", ps->count ? " beyond" : "",
		         strerror(ps->err));
	else if (ps->end == GTR_PY_STACK_COMPLETE && !ps->count)
		snprintf(buf, size, "no Python frames: the thread ran no Python code then");
	else
		snprintf(buf, size, "%s", phrases[ps->end <= GTR_PY_STACK_BUSY ? ps->end : 0]);
	return buf;
}
