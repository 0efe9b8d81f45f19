/*
 * fake-trace.h: a tiny trace writer for the unit tests (test-model.c,
 * test-detect.c): a file header, a chunk per thread, events written by
 * hand, and CHECK().  Clock values are ns (no CLOCK_TSC flag).
 */
#ifndef GILTRACE_FAKE_TRACE_H
#define GILTRACE_FAKE_TRACE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "trace-format.h"
#include "trace.h"

/* A failed check clears the test's local `ok` and says where. */
#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: %s: check failed: %s\n", __FILE__, __LINE__, __func__, \
			        #cond);                                                            \
			ok = 0;                                                                    \
		}                                                                                  \
	} while (0)

#define CHUNK 4096u
#define META 4096u
#define MAX_CHUNKS 16

struct fake {
	unsigned char *buf;
	size_t size;
	struct gtr_file_header *h;
	unsigned chunks;
};

__attribute__((unused)) static void fake_init(struct fake *f, uint32_t flags)
{
	f->size = GTR_HEADER_SIZE + META + MAX_CHUNKS * CHUNK;
	f->buf = calloc(1, f->size);
	f->h = (struct gtr_file_header *)f->buf;
	memcpy(f->h->magic, GTR_MAGIC, 8);
	f->h->version_major = GTR_VERSION_MAJOR;
	f->h->header_size = GTR_HEADER_SIZE;
	f->h->chunk_size = CHUNK;
	f->h->chunk_area_offset = GTR_HEADER_SIZE + META;
	f->h->meta_capacity = META;
	f->h->flags = flags; /* no CLOCK_TSC: clock values are ns */
	f->h->pid = 100;
	f->h->start = (struct gtr_clock_pair){ 1000, 1000 };
	f->chunks = 0;
}

__attribute__((unused)) static struct gtr_chunk_header *fake_chunk(struct fake *f, uint32_t serial, int32_t tid, uint32_t seq,
                                           uint64_t first_clock)
{
	struct gtr_chunk_header *c =
	        (struct gtr_chunk_header *)(f->buf + f->h->chunk_area_offset + (size_t)f->chunks * CHUNK);
	f->chunks++;
	f->h->chunks_allocated = f->chunks;
	c->magic = GTR_CHUNK_MAGIC;
	c->thread_serial = serial;
	c->tid = tid;
	c->seq = seq;
	c->first_clock = first_clock;
	return c;
}

__attribute__((unused)) static void fake_event(struct gtr_chunk_header *c, unsigned type, unsigned arg, uint64_t clock, uint64_t a,
                       uint64_t b)
{
	uint64_t *p = (uint64_t *)((char *)c + GTR_CHUNK_HEADER_SIZE + c->used);
	p[0] = gtr_event_word(type, arg, clock);
	uint64_t payload[2] = { a, b };
	unsigned words = type < GTR_EV_COUNT ? gtr_event_payload_words[type] : 0;
	for (unsigned i = 0; i < words; i++)
		p[1 + i] = payload[i];
	c->used += 8 * (1 + words);
}

__attribute__((unused)) static void fake_stack(struct gtr_chunk_header *c, uint64_t clock, const uint64_t *frames, unsigned n)
{
	uint64_t *p = (uint64_t *)((char *)c + GTR_CHUNK_HEADER_SIZE + c->used);
	p[0] = gtr_event_word(GTR_EV_STACK, n, clock);
	memcpy(p + 1, frames, n * sizeof *frames);
	c->used += 8 * (1 + n);
}

/* A record of `type` whose payload words are given (a sized one: its arg
 * is the count). */
__attribute__((unused)) static void fake_words(struct gtr_chunk_header *c, unsigned type, uint64_t clock,
                                               const uint64_t *words, unsigned n)
{
	uint64_t *p = (uint64_t *)((char *)c + GTR_CHUNK_HEADER_SIZE + c->used);
	p[0] = gtr_event_word(type, n, clock);
	memcpy(p + 1, words, n * sizeof *words);
	c->used += 8 * (1 + n);
}

__attribute__((unused)) static const char *fake_write(struct fake *f, size_t size)
{
	static char path[64];
	snprintf(path, sizeof path, "/tmp/giltrace-unit-%d.gtr", (int)getpid());
	FILE *out = fopen(path, "wb");
	fwrite(f->buf, 1, size ? size : f->size, out);
	fclose(out);
	free(f->buf);
	return path;
}

/* The file fake_write() writes, for main() to remove. */
__attribute__((unused)) static void fake_unlink(void)
{
	char path[64];
	snprintf(path, sizeof path, "/tmp/giltrace-unit-%d.gtr", (int)getpid());
	if (!getenv("KEEP"))
		unlink(path);
}

/* Open a trace and walk it once, as a command's analysis does: then its
 * event count, notes and losses are final, and its first events are in
 * walked[]. */
static struct trace_event walked[64];

__attribute__((unused)) static int open_walked(struct trace *t, const char *path, char *err, size_t errlen)
{
	if (trace_open(t, path, err, errlen) != 0)
		return -1;
	struct trace_walk *w = trace_walk_begin(t);
	if (!w)
		return -1;
	const struct trace_event *e;
	size_t n = 0;
	while ((e = trace_walk_next(w)))
		if (n < sizeof walked / sizeof walked[0])
			walked[n++] = *e;
	return trace_walk_end(w);
}

#endif
