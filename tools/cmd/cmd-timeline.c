/*
 * cmd-timeline.c: `giltrace timeline [options] TRACE`
 *
 * One lane per thread, time flowing left to right, one character per
 * column (lanes.h aggregates what falls inside a column): the state that
 * took most of the column's time, or a mark when something happened in
 * it.  The finalization start is a vertical bar through every lane.  The
 * window is around finalization by default (window.h).  Colour only on a
 * terminal (or --color always); the characters alone carry the meaning.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "builtin.h"
#include "describe.h"
#include "analysis.h"
#include "detect.h"
#include "format.h"
#include "lanes.h"
#include "model.h"
#include "trace.h"
#include "usage.h"
#include "window.h"

static const char usage_text[] =
        "usage: giltrace timeline [--around finalize|whole] [--from TIME] [--to TIME]\n"
        "                         [--width N] [--color auto|always|never] TRACE\n\n"
        "  --around finalize   the last moments before and after finalization began\n"
        "                      (the default when the trace has a finalization)\n"
        "  --around whole      the whole run (the default otherwise)\n"
        "  --from, --to TIME   the window's ends, from the trace start: 12ms, 1.5s, 300us\n"
        "  --width N           columns of output (default: the terminal's, else 100)\n"
        "  --color WHEN        auto (on a terminal, unless NO_COLOR is set and not\n"
        "                      empty), always, never\n\n"
        "exit status: 0 the trace was shown, 2 it was unusable or the window is empty\n";

#define LABEL_WIDTH 22
#define MIN_COLUMNS 20

enum cell_kind { CELL_ABSENT, CELL_RELEASED, CELL_BLOCKED, CELL_WAITING, CELL_HELD, CELL_FINALIZE, CELL_EXIT,
	         CELL_PARK, CELL_FREE, CELL_NOTE, CELL_ERROR, CELL_KINDS };

/* The cell of a lane's dominant state in a column. */
static const enum cell_kind cell_of_state[LANE_STATES] = {
	[LANE_ABSENT] = CELL_ABSENT,
	[LANE_RELEASED] = CELL_RELEASED,
	[LANE_WAITING] = CELL_WAITING,
	[LANE_HELD] = CELL_HELD,
	[LANE_BLOCKED] = CELL_BLOCKED,
};

/* Later kinds win a column over earlier ones. */
static const struct {
	char ch;
	const char *colour;        /* ANSI SGR */
	const char *meaning;
} cells[CELL_KINDS] = {
	[CELL_ABSENT] = { ' ', "", "" },
	[CELL_RELEASED] = { '-', "2", "alive, without the GIL" },
	[CELL_BLOCKED] = { '~', "30;46", "blocked in the parking lot" },
	[CELL_WAITING] = { '=', "30;43", "waiting for the GIL" },
	[CELL_HELD] = { '#', "30;42", "holding the GIL" },
	[CELL_FINALIZE] = { '|', "1;35", "finalization" },
	[CELL_EXIT] = { 'X', "1", "exit" },
	[CELL_PARK] = { 'P', "1", "parked" },
	[CELL_FREE] = { 'F', "1;34", "tstate freed" },
	[CELL_NOTE] = { '?', "1;36", "note" },
	[CELL_ERROR] = { '!', "1;37;41", "error" },
};

static enum cell_kind mark_cell(const struct mark *k, const struct findings *fs)
{
	switch (k->kind) {
	case MARK_FINALIZE:
		return CELL_FINALIZE;
	case MARK_TSTATE_FREE:
		return CELL_FREE;
	case MARK_THREAD_EXIT:
		return CELL_EXIT;
	case MARK_THREAD_PARK:
		return CELL_PARK;
	case MARK_FINDING:
		return detectors[fs->items[k->finding].kind].severity == SEVERITY_ERROR ? CELL_ERROR : CELL_NOTE;
	}
	return CELL_ABSENT;
}

static unsigned output_width(long requested)
{
	if (requested > 0)
		return (unsigned)requested;
	struct winsize ws;
	if (isatty(STDOUT_FILENO) && ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	const char *env = getenv("COLUMNS");
	long cols = env ? strtol(env, NULL, 10) : 0;
	return cols > 0 && cols < 10000 ? (unsigned)cols : 100;
}

/* Print s in exactly `width` terminal columns: cut or padded, counting
 * UTF-8 characters (trace_sanitize_string() left only valid ones). */
static void print_fitted(const char *s, unsigned width)
{
	unsigned used = 0;
	const unsigned char *p = (const unsigned char *)s;
	while (*p && used < width) {
		size_t len = *p < 0x80 ? 1 : trace_utf8_sequence(p, strlen((const char *)p));
		if (!len)
			len = 1; /* not from the reader: cannot happen, but never loop */
		fwrite(p, 1, len, stdout);
		p += len;
		used++;
	}
	printf("%*s", (int)(width - used), "");
}

/* The display width of s (characters, as print_fitted counts them). */
static unsigned display_width(const char *s, size_t bytes)
{
	unsigned used = 0;
	const unsigned char *p = (const unsigned char *)s, *end = p + bytes;
	while (p < end && *p) {
		size_t len = *p < 0x80 ? 1 : trace_utf8_sequence(p, (size_t)(end - p));
		p += len ? len : 1;
		used++;
	}
	return used;
}

/* A lane's label in `width` columns: a name too long loses its end, not
 * the " (tid)" after it, which tells the lanes apart. */
static void print_lane_label(const char *label, unsigned width)
{
	const char *tid = strrchr(label, '(');
	if (!tid || tid == label || tid[-1] != ' ' || display_width(label, strlen(label)) <= width) {
		print_fitted(label, width);
		return;
	}
	tid--; /* from its space */
	unsigned tail = display_width(tid, strlen(tid));
	if (tail + 2 > width) {
		print_fitted(label, width);
		return;
	}
	unsigned head = width - tail - 1, used = 0;
	const unsigned char *p = (const unsigned char *)label;
	while (p < (const unsigned char *)tid && used < head) {
		size_t len = *p < 0x80 ? 1 : trace_utf8_sequence(p, (size_t)((const unsigned char *)tid - p));
		len = len ? len : 1;
		fwrite(p, 1, len, stdout);
		p += len;
		used++;
	}
	printf("\xe2\x80\xa6%s%*s", tid, (int)(width - used - 1 - tail), ""); /* "…" */
}

/* "+15.37ms": compact, for the axis */
static void axis_time(char *buf, size_t size, uint64_t ns, uint64_t span)
{
	if (span >= 10000000000u)
		snprintf(buf, size, "%.2fs", ns / 1e9);
	else if (span >= 10000000u)
		snprintf(buf, size, "%.1fms", ns / 1e6);
	else if (span >= 100000u)
		snprintf(buf, size, "%.3fms", ns / 1e6);
	else
		snprintf(buf, size, "%.1fus", ns / 1e3);
}

static void print_axis(const struct lanes *l)
{
	size_t n = l->columns;
	char *line = malloc(n + 1);
	if (!line)
		return;
	memset(line, ' ', n);
	line[n] = '\0';
	uint64_t span = l->to_ns - l->from_ns;
	/* a tick and its time every quarter, where it fits whole */
	size_t free_from = 0;
	for (unsigned q = 0; q < 4; q++) {
		size_t col = n * q / 4;
		char t[32];
		axis_time(t, sizeof t, l->from_ns + span * q / 4, span);
		size_t len = strlen(t);
		if (col < free_from || col + 1 + len > n)
			continue;
		free_from = col + 1 + len + 1;
		line[col] = '|';
		memcpy(line + col + 1, t, len);
	}
	printf("%*s%s\n", LABEL_WIDTH, "", line);
	free(line);
}

static void paint(enum cell_kind k, bool colour)
{
	if (colour && cells[k].colour[0])
		printf("\033[%sm%c\033[0m", cells[k].colour, cells[k].ch);
	else
		putchar(cells[k].ch);
}

/* A lane's row: one colour sequence per run of equal cells. */
static void paint_row(const enum cell_kind *row, size_t n, bool colour)
{
	for (size_t c = 0; c < n;) {
		size_t end = c + 1;
		while (end < n && row[end] == row[c])
			end++;
		bool sgr = colour && cells[row[c]].colour[0];
		if (sgr)
			printf("\033[%sm", cells[row[c]].colour);
		for (size_t i = c; i < end; i++)
			putchar(cells[row[c]].ch);
		if (sgr)
			fputs("\033[0m", stdout);
		c = end;
	}
}

static void print_lanes(const struct lanes *l, const struct model *m, const struct findings *fs, bool colour)
{
	size_t n = l->columns;
	enum cell_kind *row = malloc(n * sizeof *row);
	/* the marks of every lane, placed once (a pool of thousands of
	 * threads has thousands of lanes and of marks), and the columns where
	 * a finalization began: a bar through every lane */
	enum cell_kind *marked = calloc(l->lane_count * n + 1, sizeof *marked); /* CELL_ABSENT */
	bool *fin_col = calloc(n, sizeof *fin_col);
	if (!row || !marked || !fin_col)
		die("out of memory");
	for (size_t i = 0; i < l->mark_count; i++) {
		const struct mark *k = &l->marks[i];
		size_t c = lanes_column_of(l, k->ns);
		enum cell_kind kind = mark_cell(k, fs);
		int lane = k->thread >= 0 ? l->lane_of_thread[k->thread] : -1;
		if (kind == CELL_FINALIZE)
			fin_col[c] = true;
		else if (lane >= 0 && kind > marked[(size_t)lane * n + c])
			marked[(size_t)lane * n + c] = kind;
	}
	for (size_t lane = 0; lane < l->lane_count; lane++) {
		for (size_t c = 0; c < n; c++) {
			row[c] = cell_of_state[lanes_dominant(l, lane, c)];
			if (fin_col[c])
				row[c] = CELL_FINALIZE;
			if (marked[lane * n + c] > row[c])
				row[c] = marked[lane * n + c];
		}
		char label[64];
		unsigned group = model_thread_group(m, l->thread_of_lane[lane]);
		if (model_gils_seen(m) > 1 && (!lane || group != model_thread_group(m, l->thread_of_lane[lane - 1])))
			printf("%s:\n", model_group_label(m, group, label, sizeof label));
		model_lane_label(m, l->thread_of_lane[lane], label, sizeof label);
		print_lane_label(label, LABEL_WIDTH - 1);
		putchar(' ');
		paint_row(row, n, colour);
		putchar('\n');
	}
	free(row);
	free(marked);
	free(fin_col);
}

/* Three lines at most, each within the narrowest width: the states (with
 * '~' only when the trace has parking-lot waits, 3.13+, so that older
 * interpreters' legends stay as they were), then the marks. */
static void print_legend(bool colour, bool blocked)
{
	static const enum cell_kind lines[][7] = {
		{ CELL_RELEASED, CELL_WAITING, CELL_HELD, CELL_KINDS },
		{ CELL_BLOCKED, CELL_KINDS },
		{ CELL_FINALIZE, CELL_EXIT, CELL_PARK, CELL_FREE, CELL_NOTE, CELL_ERROR, CELL_KINDS },
	};
	for (size_t i = 0; i < sizeof lines / sizeof lines[0]; i++) {
		if (lines[i][0] == CELL_BLOCKED && !blocked)
			continue;
		printf("%*s", LABEL_WIDTH, "");
		for (size_t k = 0; lines[i][k] != CELL_KINDS; k++) {
			paint(lines[i][k], colour);
			printf(" %s%s", cells[lines[i][k]].meaning, lines[i][k] == CELL_ERROR ? "" : "  ");
		}
		putchar('\n');
	}
}

static void print_findings(const struct lanes *l, const struct model *m, const struct findings *fs, bool colour)
{
	bool any = false;
	for (size_t i = 0; i < l->mark_count; i++) {
		const struct mark *k = &l->marks[i];
		if (k->kind != MARK_FINDING)
			continue;
		const struct finding *f = &fs->items[k->finding];
		char at[32], label[64];
		if (!any)
			printf("\nfindings in the window (giltrace check shows them whole):\n");
		any = true;
		model_thread_label(m, f->thread, label, sizeof label);
		printf("  ");
		paint(mark_cell(k, fs), colour);
		printf(" +%s  %s  %s: %s\n", format_duration(at, sizeof at, f->ns), label, detectors[f->kind].id,
		       f->what);
	}
}

static void show(const struct trace *t, const struct model *m, const struct findings *fs, uint64_t from,
                 uint64_t to, unsigned width, bool colour)
{
	unsigned columns = width > LABEL_WIDTH + MIN_COLUMNS ? width - LABEL_WIDTH : MIN_COLUMNS;
	struct lanes l;
	if (lanes_build(&l, m, fs, from, to, columns) != 0)
		die("out of memory");
	char a[32], b[32], c[32], d[32], v[64];
	const struct gtr_file_header *h = &t->header;
	describe_python_version(h, v, sizeof v);
	printf("%s: pid %d, python %s, %s\n", t->path, h->pid, v[0] ? v : "?",
	       t->truncated ? "did not exit normally" : "exited normally");
	printf("window +%s to +%s (%s, %s per column)", format_duration(a, sizeof a, l.from_ns),
	       format_duration(b, sizeof b, l.to_ns), format_duration(c, sizeof c, l.to_ns - l.from_ns),
	       format_duration(d, sizeof d, (l.to_ns - l.from_ns) / l.columns ? (l.to_ns - l.from_ns) / l.columns : 1));
	if (m->finalization.seen)
		printf(", finalization began at +%s", format_duration(a, sizeof a, m->finalization.start_ns));
	printf("\n\n");
	for (size_t i = 0; i < t->note_count; i++)
		printf("note: %s\n", t->notes[i]);
	print_axis(&l);
	print_lanes(&l, m, fs, colour);
	if (!l.lane_count)
		printf("%*s(no thread was alive in this window)\n", LABEL_WIDTH, "");
	putchar('\n');
	print_legend(colour, m->blocks > 0);
	print_findings(&l, m, fs, colour);
	lanes_free(&l);
}

static bool want_colour(const char *when)
{
	if (!strcmp(when, "always"))
		return true;
	if (!strcmp(when, "never"))
		return false;
	if (strcmp(when, "auto") != 0)
		die("--color takes auto, always or never, not '%s'", when);
	const char *term = getenv("TERM"), *no_colour = getenv("NO_COLOR");
	return isatty(STDOUT_FILENO) && !(no_colour && *no_colour) && !(term && !strcmp(term, "dumb"));
}

int cmd_timeline(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "around", required_argument, NULL, 'a' }, { "from", required_argument, NULL, 'f' },
		{ "to", required_argument, NULL, 't' },     { "width", required_argument, NULL, 'w' },
		{ "color", required_argument, NULL, 'c' },  { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct window_request req = { 0 };
	const char *colour_when = "auto";
	long width = 0;
	char err[512];
	int c;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'a':
			if (window_parse_around(optarg, &req, err, sizeof err) != 0)
				die("%s", err);
			break;
		case 'f':
		case 't':
			if (window_parse_time(optarg, c == 'f' ? &req.from_ns : &req.to_ns, err, sizeof err) != 0)
				die("%s", err);
			*(c == 'f' ? &req.has_from : &req.has_to) = true;
			break;
		case 'w': {
			char *end;
			width = strtol(optarg, &end, 10);
			if (*end || width < LABEL_WIDTH + MIN_COLUMNS || width > 100000)
				die("--width takes a number of columns from %d to 100000, not '%s'",
				    LABEL_WIDTH + MIN_COLUMNS, optarg);
			break;
		}
		case 'c':
			colour_when = optarg;
			break;
		case 'h':
			return usage(usage_text, true);
		default:
			return usage(usage_text, false);
		}
	}
	if (argc - optind != 1)
		return usage(usage_text, false);
	bool colour = want_colour(colour_when);
	struct analysis a;
	if (analysis_open(&a, argv[optind], ANALYSIS_WINDOWS, err, sizeof err) != 0) {
		analysis_close(&a);
		die("%s", err);
	}
	uint64_t from, to;
	int status = EXIT_CLEAN;
	if (window_choose(&a.model, &req, &from, &to, err, sizeof err) != 0) {
		print_error("%s", err);
		status = EXIT_UNUSABLE;
	} else {
		show(&a.trace, &a.model, &a.findings, from, to, output_width(width), colour);
	}
	analysis_close(&a);
	return status;
}
