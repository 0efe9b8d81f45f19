/*
 * html-report.c: `giltrace report --html`, one self-contained page.
 *
 * Notes about the implementation
 * ------------------------------
 *
 * The page must open anywhere, offline, years later: it fetches nothing.
 * CSS and JS are inline, fonts are the system's, and a Content-Security-
 * Policy of default-src 'none' makes any fetch that slipped in fail
 * visibly instead of leaking.  Every string that comes from the trace
 * (thread names, paths, the interpreter's version, the reader's notes, the
 * findings' text) goes through html_escape(), the only escaper; no trace
 * string ever reaches the script, which reads the DOM.
 *
 * Size does not grow with the trace.  The timeline is the window of
 * window.h binned by lanes_build() into HTML_REPORT_COLUMNS columns per
 * thread lane; each run of consecutive columns with the same dominant
 * state (lanes_dominant(): what took most of the column's time, so that
 * what is below a column is aggregated, never dropped) is one <rect>.  A
 * lane costs at most one rect per column, however many events it had.
 * Frees, exits and parks that fall in the same lane, column and kind
 * are drawn once with their count (a thread pool that frees thousands of
 * thread states); findings are always drawn one by one, each has a link.
 *
 * Layout.  The timeline is the first thing in the page, at its top-left,
 * so that an SVG coordinate is a page coordinate: the title band, the
 * axis band, then one lane of LANE_H pixels per thread.  The plot is a
 * nested <svg> whose viewBox is in columns horizontally and in pixels
 * vertically with preserveAspectRatio="none": zooming and panning change
 * only its viewBox's x and width, the lanes keep their height, and marks
 * are lines with vector-effect: non-scaling-stroke so that they keep their
 * width in pixels at any zoom.  The labels, the axis and the toolbar are
 * outside the plot and are not scaled; the script redraws the axis at
 * every change of the view.
 *
 * Findings.  The timeline mark of finding N is <a id="mark-finding-N">
 * linking to its text block id="finding-N-text"; the text block links to
 * "#finding-N", a fragment with no element of that id (so the browser
 * does not scroll by itself): the script zooms to the mark, highlights it
 * and scrolls the timeline into view, also when the page is opened at
 * that fragment.  The text block is finding_print_text()'s, escaped.
 *
 * Words.  Below the timeline the page says what the text report says, in
 * the same words: report-data.h's, laid out here and escaped (a heading's
 * first letter made a capital); the timeline, its legend and the links
 * are this file's own.
 *
 * The script installs window.onerror first (errors are appended to
 * body's data-errors) and sets body's data-ready="1" when its set-up has
 * run, for tests and for anyone wondering whether the page is alive.
 */
#include "html-report.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "findings-output.h"
#include "format.h"
#include "lanes.h"
#include "spans.h"
#include "symbolize.h"

/* Geometry of the timeline in CSS pixels; the script reads it back from
 * the root <svg>'s data- attributes. */
enum {
	TITLE_H = 30,      /* title band; the toolbar floats over its right end */
	AXIS_H = 32,       /* flags (finalization, the current finding), ticks */
	PLOT_Y = TITLE_H + AXIS_H,
	LANE_H = 22,
	BAR_INSET = 3,     /* state bars leave this much of a lane free above and below */
	LABEL_W = 220,     /* lane labels */
	RIGHT_PAD = 12,
	BOTTOM_PAD = 6,
	DEFAULT_PLOT_W = 1000, /* until the script fits the plot to the window */
};

/* ---- escaping ---------------------------------------------------------------- */

void html_escape(FILE *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		switch (*p) {
		case '&':
			fputs("&amp;", out);
			break;
		case '<':
			fputs("&lt;", out);
			break;
		case '>':
			fputs("&gt;", out);
			break;
		case '"':
			fputs("&quot;", out);
			break;
		case '\'':
			fputs("&#39;", out);
			break;
		case '\t':
		case '\n':
			putc(*p, out);
			break;
		default:
			if (*p < 0x20 || *p == 0x7f)
				fputs("&#xFFFD;", out);
			else
				putc(*p, out);
		}
	}
}

/* html_escape() of a formatted string. */
__attribute__((format(printf, 2, 3))) static void html_escapef(FILE *out, const char *fmt, ...)
{
	char buf[512], *text = buf;
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof buf) {
		text = malloc((size_t)n + 1);
		if (!text) {
			html_escape(out, buf); /* out of memory: the start of it */
			return;
		}
		va_start(ap, fmt);
		vsnprintf(text, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	html_escape(out, text);
	if (text != buf)
		free(text);
}

/* html_escape() of s with its first letter a capital: one of the report's
 * phrases (report-data.h) as a heading. */
static void html_escape_capitalized(FILE *out, const char *s)
{
	if (*s >= 'a' && *s <= 'z')
		putc(*s++ - 'a' + 'A', out);
	html_escape(out, s);
}

/* ---- the page's fixed parts ----------------------------------------------------- */

/* The style and scripts are the files in tools/html, embedded by html-assets.c. */

/* ---- the page for one trace ------------------------------------------------------ */

struct page {
	FILE *out;
	const struct report *r;    /* what the page says but the timeline */
	const struct trace *t;
	const struct model *m;
	const struct findings *fs;
	const struct html_report_window *w;
	struct lanes lanes;
	unsigned plot_h;           /* lanes * LANE_H (one lane's worth if none) */
	bool *finding_shown;       /* per finding: its mark is on the timeline */
};

/* A mark as drawn: the first of `count` of one kind in one lane and
 * column (findings: always 1). */
struct drawn_mark {
	const struct mark *k;
	size_t count;
};

static void write_head(struct page *p)
{
	FILE *out = p->out;
	const char *base = strrchr(p->t->path, '/');
	fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'; script-src 'unsafe-inline'\">\n"
	      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	      "<meta name=\"generator\" content=\"giltrace report --html\">\n<title>giltrace: ",
	      out);
	html_escape(out, base ? base + 1 : p->t->path);
	fputs("</title>\n<style>\n", out);
	fputs(html_page_css, out);
	fputs("</style>\n</head>\n<body>\n<script>\n", out);
	fputs(html_onerror_js, out);
	fputs("</script>\n", out);
}

static void write_lane_rects(struct page *p, size_t lane, enum lane_state *dominant)
{
	static const char *const state_names[LANE_STATES] = {
		[LANE_RELEASED] = "released",
		[LANE_WAITING] = "waiting",
		[LANE_HELD] = "held",
		[LANE_BLOCKED] = "blocked",
	};
	const struct lanes *l = &p->lanes;
	unsigned y = (unsigned)lane * LANE_H + BAR_INSET;
	for (size_t c = 0; c < l->columns; c++)
		dominant[c] = lanes_dominant(l, lane, c);
	for (int s = LANE_RELEASED; s < LANE_STATES; s++) {
		fprintf(p->out, "<g data-state=\"%s\">", state_names[s]);
		for (size_t c = 0; c < l->columns;) {
			if (dominant[c] != (enum lane_state)s) {
				c++;
				continue;
			}
			size_t run = 1;
			while (c + run < l->columns && dominant[c + run] == (enum lane_state)s)
				run++;
			fprintf(p->out, "<rect x=\"%zu\" y=\"%u\" width=\"%zu\" height=\"%d\"/>", c, y, run,
			        LANE_H - 2 * BAR_INSET);
			c += run;
		}
		fputs("</g>\n", p->out);
	}
}

/* The tooltip of a mark. */
static void write_mark_title(struct page *p, const struct drawn_mark *d)
{
	const struct model *m = p->m;
	const struct mark *k = d->k;
	char who[96], at[32];
	FILE *out = p->out;
	model_thread_phrase(m, k->thread, who, sizeof who);
	format_duration(at, sizeof at, k->ns);
	fputs("<title>", out);
	switch (k->kind) {
	case MARK_FINALIZE:
		html_escapef(out, "finalization began at +%s (first seen by %s)", at, who);
		break;
	case MARK_TSTATE_FREE: {
		uint64_t tstate = k->tstate;
		if (d->count > 1)
			html_escapef(out, "%s freed %zu thread states here, the first (0x%" PRIx64 ") at +%s", who,
			             d->count, tstate, at);
		else
			html_escapef(out, "%s freed thread state 0x%" PRIx64 " at +%s", who, tstate, at);
		break;
	}
	case MARK_THREAD_EXIT: {
		const struct model_thread *th = &m->threads[k->thread];
		html_escapef(out, "%s ended at +%s (%s%s)", who, at,
		             th->exit != THREAD_END_NONE ? thread_end_name(th->exit) : "exit",
		             th->exit_held_gil ? ", holding the GIL" : "");
		break;
	}
	case MARK_THREAD_PARK:
		html_escapef(out, "%s parked in pause() at +%s", who, at);
		break;
	case MARK_FINDING: {
		const struct finding *f = &p->fs->items[k->finding];
		const struct detector_info *di = &detectors[f->kind];
		html_escapef(out, "finding %d: %s (%s), %s at +%s; click for its report", k->finding + 1, di->id,
		             di->severity == SEVERITY_ERROR ? "error" : "note", who, at);
		break;
	}
	}
	fputs("</title>", out);
}

static void write_mark(struct page *p, const struct drawn_mark *d)
{
	const struct lanes *l = &p->lanes;
	const struct mark *k = d->k;
	FILE *out = p->out;
	double x = lanes_x(l, k->ns);
	int lane = k->thread >= 0 ? l->lane_of_thread[k->thread] : -1;
	unsigned y1 = 0, y2 = p->plot_h;
	if (lane >= 0 && k->kind != MARK_FINALIZE) {
		y1 = (unsigned)lane * LANE_H + 1;
		y2 = (unsigned)lane * LANE_H + LANE_H - 1;
		if (k->kind == MARK_TSTATE_FREE)
			y1 = (unsigned)lane * LANE_H + LANE_H / 2;
	}
	if (k->kind == MARK_FINDING) {
		const struct finding *f = &p->fs->items[k->finding];
		int n = k->finding + 1;
		fprintf(out,
		        "<a class=\"mark finding %s\" id=\"mark-finding-%d\" href=\"#finding-%d-text\" "
		        "data-finding=\"%d\" data-x=\"%.3f\" data-lane=\"%d\" data-tid=\"%d\">",
		        detectors[f->kind].severity == SEVERITY_ERROR ? "error" : "note", n, n, n, x, lane,
		        k->thread >= 0 ? p->m->threads[k->thread].info->tid : 0);
	} else {
		fprintf(out, "<g class=\"mark %s\" data-x=\"%.3f\" data-lane=\"%d\"", mark_kind_name(k->kind), x, lane);
		if (d->count > 1)
			fprintf(out, " data-count=\"%zu\"", d->count);
		fputs(">", out);
	}
	write_mark_title(p, d);
	fprintf(out, "<line class=\"hit\" x1=\"%.3f\" x2=\"%.3f\" y1=\"%u\" y2=\"%u\"/>", x, x, y1, y2);
	fprintf(out, "<line class=\"v\" x1=\"%.3f\" x2=\"%.3f\" y1=\"%u\" y2=\"%u\"/>", x, x, y1, y2);
	fputs(k->kind == MARK_FINDING ? "</a>\n" : "</g>\n", out);
}

/* The marks to draw: findings one by one, the others once per lane,
 * column and kind.  Returns the count, or -1 when out of memory. */
static ssize_t collect_drawn_marks(struct page *p, struct drawn_mark **out)
{
	const struct lanes *l = &p->lanes;
	enum { KINDS = MARK_FINDING + 1 };
	size_t slots = (l->lane_count + 1) * KINDS; /* +1: marks of no lane */
	size_t *last = malloc(slots * sizeof *last);
	struct drawn_mark *drawn = malloc((l->mark_count ? l->mark_count : 1) * sizeof *drawn);
	if (!last || !drawn) {
		free(last);
		free(drawn);
		return -1;
	}
	for (size_t i = 0; i < slots; i++)
		last[i] = SIZE_MAX;
	size_t n = 0;
	for (size_t i = 0; i < l->mark_count; i++) {
		const struct mark *k = &l->marks[i];
		if (k->kind == MARK_FINDING) {
			if (k->finding < 0 || (size_t)k->finding >= p->fs->count)
				continue;
			p->finding_shown[k->finding] = true;
			drawn[n++] = (struct drawn_mark){ k, 1 };
			continue;
		}
		int lane = k->thread >= 0 ? p->lanes.lane_of_thread[k->thread] : -1;
		size_t slot = (size_t)(lane + 1) * KINDS + k->kind;
		size_t last_drawn = last[slot];
		if (k->kind != MARK_FINALIZE && last_drawn != SIZE_MAX &&
		    lanes_column_of(l, drawn[last_drawn].k->ns) == lanes_column_of(l, k->ns)) {
			drawn[last_drawn].count++;
			continue;
		}
		last[slot] = n;
		drawn[n++] = (struct drawn_mark){ k, 1 };
	}
	free(last);
	*out = drawn;
	return (ssize_t)n;
}

static int write_timeline(struct page *p)
{
	FILE *out = p->out;
	const struct lanes *l = &p->lanes;
	unsigned height = PLOT_Y + p->plot_h + BOTTOM_PAD;
	char label[96];

	fprintf(out,
	        "<div id=\"tl-wrap\">\n"
	        "<svg id=\"timeline\" xmlns=\"http://www.w3.org/2000/svg\" width=\"100%%\" height=\"%u\" "
	        "data-label-w=\"%d\" data-axis-y=\"%d\" data-plot-y=\"%d\" data-lane-h=\"%d\" "
	        "data-right-pad=\"%d\" role=\"img\" aria-label=\"GIL timeline\">\n",
	        height, LABEL_W, TITLE_H, PLOT_Y, LANE_H, RIGHT_PAD);
	fprintf(out,
	        "<defs><clipPath id=\"label-clip\"><rect x=\"0\" y=\"0\" width=\"%d\" height=\"%u\"/>"
	        "</clipPath></defs>\n",
	        LABEL_W - 8, height);
	fputs("<text class=\"title\" x=\"8\" y=\"20\">giltrace report: ", out);
	html_escape(out, p->t->path);
	fputs("</text>\n", out);

	/* stripes and labels, outside the plot: never scaled */
	for (size_t lane = 0; lane < l->lane_count; lane++) {
		unsigned y = PLOT_Y + (unsigned)lane * LANE_H;
		if (lane % 2)
			fprintf(out, "<rect class=\"stripe\" x=\"0\" y=\"%u\" width=\"100%%\" height=\"%d\"/>\n", y, LANE_H);
		model_lane_label(p->m, l->thread_of_lane[lane], label, sizeof label);
		fprintf(out, "<text class=\"lname\" id=\"lname-%zu\" x=\"8\" y=\"%u\" clip-path=\"url(#label-clip)\" data-label=\"",
		        lane, y + LANE_H / 2 + 4);
		html_escape(out, label);
		fputs("\">", out);
		html_escape(out, label);
		fputs("</text>\n", out);
	}
	if (!l->lane_count)
		fprintf(out, "<text class=\"empty\" x=\"%d\" y=\"%d\">no thread was alive in this window</text>\n",
		        LABEL_W, PLOT_Y + LANE_H / 2 + 4);
	fputs("<g id=\"grid\"></g>\n<g id=\"axis\"></g>\n", out);

	fprintf(out,
	        "<svg id=\"plot\" x=\"%d\" y=\"%d\" width=\"%d\" height=\"%u\" viewBox=\"0 0 %zu %u\" "
	        "preserveAspectRatio=\"none\" data-columns=\"%zu\" data-from-ns=\"%" PRIu64 "\" data-to-ns=\"%" PRIu64
	        "\">\n",
	        LABEL_W, PLOT_Y, DEFAULT_PLOT_W, p->plot_h, l->columns, p->plot_h, l->columns, l->from_ns, l->to_ns);
	enum lane_state *dominant = malloc(l->columns * sizeof *dominant);
	if (!dominant)
		return -1;
	for (size_t lane = 0; lane < l->lane_count; lane++) {
		int thread = l->thread_of_lane[lane];
		const char *name = model_thread_name(p->m, thread);
		fprintf(out, "<g class=\"lane\" id=\"lane-%zu\" data-lane=\"%zu\" data-tid=\"%d\" data-y=\"%u\"", lane,
		        lane, p->m->threads[thread].info->tid, (unsigned)lane * LANE_H);
		if (name) {
			fputs(" data-name=\"", out);
			html_escape(out, name);
			fputs("\"", out);
		}
		fputs(">\n", out);
		write_lane_rects(p, lane, dominant);
		fputs("</g>\n", out);
	}
	free(dominant);

	struct drawn_mark *drawn;
	ssize_t n = collect_drawn_marks(p, &drawn);
	if (n < 0)
		return -1;
	fputs("<g id=\"marks\">\n", out);
	for (ssize_t i = 0; i < n; i++)
		write_mark(p, &drawn[i]);
	fputs("</g>\n</svg>\n</svg>\n", out);
	free(drawn);

	fputs("<div id=\"toolbar\"><span id=\"range\"></span>"
	      "<button type=\"button\" id=\"zoom-in\" title=\"zoom in (or: mouse wheel over the lanes)\">+</button>"
	      "<button type=\"button\" id=\"zoom-out\" title=\"zoom out\">&#8722;</button>"
	      "<button type=\"button\" id=\"reset\" title=\"show the whole window\">reset</button></div>\n"
	      "</div>\n",
	      out);
	return 0;
}

static void write_legend(struct page *p)
{
	FILE *out = p->out;
	fputs("<div id=\"below\">\n<ul class=\"legend\">"
	      "<li><span class=\"sw held\"></span>GIL held</li>"
	      "<li><span class=\"sw waiting\"></span>waiting for the GIL</li>"
	      "<li><span class=\"sw released\"></span>running without it</li>",
	      out);
	if (p->m->blocks) /* 3.13+'s parking lot: as in the timeline's legend */
		fputs("<li><span class=\"sw blocked\"></span>blocked in the parking lot</li>", out);
	fputs("<li><span class=\"sw bar finalize\"></span>finalization began</li>"
	      "<li><span class=\"sw bar tstate-free\"></span>thread state freed</li>"
	      "<li><span class=\"sw bar thread-exit\"></span>thread ended</li>"
	      "<li><span class=\"sw bar thread-park\"></span>thread parked</li>"
	      "<li><span class=\"sw bar finding\"></span>finding</li></ul>\n",
	      out);
	fputs("<span id=\"readout\">wheel: zoom at the pointer, drag: pan; each bar shows what took most of its "
	      "time</span>\n</div>\n",
	      out);
}

/* The trace, what is known of its completeness, and the model's
 * self-check, in report-data.h's words. */
static void write_summary(struct page *p)
{
	FILE *out = p->out;
	const struct report *r = p->r;
	const struct trace *t = p->t;
	const struct model *m = p->m;
	const struct gtr_file_header *h = &t->header;
	const struct lanes *l = &p->lanes;
	char d1[32], d2[32], d3[32];

	fputs("<section id=\"trace\">\n<h2>Trace</h2>\n<dl class=\"facts\">\n<dt>file</dt><dd>", out);
	html_escape(out, t->path);
	fputs("</dd>\n<dt>python</dt><dd>", out);
	html_escape(out, r->python);
	if (h->py_version[0]) {
		fputs("<br>", out);
		html_escape(out, h->py_version);
	}
	if (r->provoked) {
		fputs("</dd>\n<dt>provoked</dt><dd class=\"warn\" id=\"provoked\">", out);
		html_escapef(out, "%s: not a natural run", r->provoked);
	}
	fputs("</dd>\n<dt>executable</dt><dd>", out);
	html_escape(out, h->executable[0] ? h->executable : "?");
	fputs("</dd>\n<dt>process</dt><dd>", out);
	html_escapef(out, "%s, %s clock", r->process, r->clock);
	if (r->writer) {
		fputs("</dd>\n<dt>written by</dt><dd>giltrace ", out);
		html_escape(out, r->writer);
	}
	fputs("</dd>\n<dt>timeline</dt><dd>", out);
	html_escapef(out, "+%s to +%s, %s; %zu columns of %s, %zu lanes",
	             format_duration(d1, sizeof d1, l->from_ns), format_duration(d2, sizeof d2, l->to_ns),
	             p->w->chosen_by, l->columns,
	             format_duration(d3, sizeof d3, (l->to_ns - l->from_ns + l->columns - 1) / l->columns),
	             l->lane_count);
	fputs("</dd>\n</dl>\n", out);

	if (r->truncated) {
		fputs("<p class=\"warn\" id=\"truncated\">TRUNCATED: ", out);
		html_escapef(out, "%s; %s.", r->truncated_why, r->truncated_read);
		fputs("</p>\n", out);
	}
	if (t->note_count) {
		fputs("<div class=\"warn\" id=\"notes\">The reader's notes:\n<ul>\n", out);
		for (size_t i = 0; i < t->note_count; i++) {
			fputs("<li>", out);
			html_escape(out, t->notes[i]);
			fputs("</li>\n", out);
		}
		fputs("</ul>\n</div>\n", out);
	}
	if (r->loss_count) {
		fputs("<p class=\"warn\" id=\"losses\">", out);
		for (size_t i = 0; i < r->loss_count; i++) {
			if (i)
				fputs("<br>", out);
			html_escape(out, r->losses[i]);
		}
		fputs("</p>\n", out);
	}
	if (r->model_errors_heading) {
		fputs("<div class=\"bad\" id=\"model-errors\">", out);
		html_escape_capitalized(out, r->model_errors_heading);
		fputs("\n<ul>\n", out);
		for (size_t i = 0; i < m->error_count; i++) {
			fputs("<li>", out);
			html_escape(out, m->errors[i]);
			fputs("</li>\n", out);
		}
		fputs("</ul>\n</div>\n", out);
	}
	fputs("</section>\n", out);
}

static void write_finalization(struct page *p, const struct report_finalization *f)
{
	FILE *out = p->out;
	fputs("<h3>", out);
	html_escape_capitalized(out, f->heading);
	fputs("</h3>\n<p>", out);
	html_escape(out, f->said);
	if (f->epoch)
		for (int i = 0; i < REPORT_THREAD_LISTS; i++) {
			fputs("<br>", out);
			html_escapef(out, "%s: %s", f->lists[i].label, f->lists[i].text);
		}
	if (f->ended[0]) {
		fputs("<br>", out);
		html_escape(out, f->ended);
	}
	fputs("</p>\n", out);
}

/* The statistics and the finalization, in report-data.h's words. */
static void write_statistics(struct page *p)
{
	FILE *out = p->out;
	const struct report *r = p->r;

	fputs("<section id=\"statistics\">\n<h2>Statistics <small>(the whole run)</small></h2>\n", out);
	for (size_t i = 0; i < r->gil_count; i++) {
		fputs("<p>", out);
		html_escape(out, r->gils[i].line);
		if (r->gils[i].lost[0]) {
			fputs("<br>", out);
			html_escape(out, r->gils[i].lost);
		}
		fputs("</p>\n", out);
	}
	fputs("<p>", out);
	html_escapef(out, "%s %s, %s, %s, %s", r->handoffs, r->latency[0], r->latency[1], r->latency[2],
	             r->latency[3]);
	fputs("<br>", out);
	html_escape(out, r->contention);
	fputs("</p>\n", out);

	fputs("<table id=\"threads\">\n<thead><tr>", out);
	for (int c = 0; c < REPORT_COLUMNS; c++)
		if (r->column_shown[c])
			fprintf(out, "<th%s>%s</th>", report_columns[c].numeric ? " class=\"n\"" : "", report_columns[c].title);
	fputs("</tr></thead>\n<tbody>\n", out);
	for (size_t i = 0; i < r->row_count; i++) {
		const struct report_thread_row *row = &r->rows[i];
		fprintf(out, "<tr data-tid=\"%d\">", p->m->threads[row->thread].info->tid);
		for (int c = 0; c < REPORT_COLUMNS; c++) {
			if (!r->column_shown[c])
				continue;
			fputs(report_columns[c].numeric ? "<td class=\"n\">" : "<td>", out);
			html_escape(out, row->cell[c]);
			fputs("</td>", out);
		}
		fputs("</tr>\n", out);
	}
	fputs("</tbody>\n</table>\n", out);

	for (size_t k = 0; k < r->finalization_count; k++)
		write_finalization(p, &r->finalizations[k]);
	fputs("</section>\n", out);
}

/* One finding's block: finding_print_text()'s, escaped. */
static int write_finding(struct page *p, size_t i, struct symbolizer *sym)
{
	FILE *out = p->out;
	const struct finding *f = &p->fs->items[i];
	const struct detector_info *di = &detectors[f->kind];
	char d[32], *text = finding_text(p->m, f, sym);
	if (!text)
		return -1;
	fprintf(out, "<div class=\"finding-block %s\" id=\"finding-%zu-text\" data-finding=\"%zu\">\n",
	        di->severity == SEVERITY_ERROR ? "error" : "note", i + 1, i + 1);
	if (p->finding_shown[i])
		fprintf(out, "<a class=\"show-finding\" href=\"#finding-%zu\" data-finding=\"%zu\">finding %zu: show it on "
		             "the timeline</a>\n",
		        i + 1, i + 1, i + 1);
	else
		fprintf(out, "<span class=\"off\">finding %zu, at +%s: outside the timeline's window (render it with "
		             "--around whole)</span>\n",
		        i + 1, format_duration(d, sizeof d, f->ns));
	fputs("<pre>", out);
	html_escape(out, text);
	fputs("</pre>\n</div>\n", out);
	free(text);
	return 0;
}

static int write_findings(struct page *p)
{
	FILE *out = p->out;
	const struct findings *fs = p->fs;
	fprintf(out, "<section id=\"findings\">\n<h2>Findings: %s</h2>\n", p->r->findings_count);
	if (!fs->count) {
		fputs("<p>None.</p>\n</section>\n", out);
		return 0;
	}
	struct symbolizer *sym = symbolizer_new(p->t);
	if (!sym)
		return -1;
	int status = 0;
	for (size_t i = 0; i < fs->count && status == 0; i++)
		status = write_finding(p, i, sym);
	if (status == 0) {
		/* modules whose frames could not be symbolised, as check says them */
		char *text = NULL;
		size_t len = 0;
		FILE *mem = open_memstream(&text, &len);
		if (!mem || (findings_print_problems(mem, sym), fclose(mem)) != 0) {
			status = -1;
		} else if (len) {
			fputs("<pre class=\"off\" id=\"symbol-problems\">", out);
			html_escape(out, text);
			fputs("</pre>\n", out);
		}
		free(text);
	}
	symbolizer_free(sym);
	fputs("</section>\n", out);
	return status;
}

int html_report_write(FILE *out, const struct report *r, const struct html_report_window *w)
{
	const struct model *m = r->m;
	const struct findings *fs = r->fs;
	struct page p = { .out = out, .r = r, .t = r->t, .m = m, .fs = fs, .w = w };
	int status = -1;
	p.finding_shown = calloc(fs->count ? fs->count : 1, sizeof *p.finding_shown);
	if (!p.finding_shown)
		return -1;
	if (lanes_build(&p.lanes, m, fs, w->from_ns, w->to_ns, HTML_REPORT_COLUMNS) != 0) {
		free(p.finding_shown);
		return -1;
	}
	p.plot_h = (unsigned)(p.lanes.lane_count ? p.lanes.lane_count : 1) * LANE_H;

	write_head(&p);
	if (write_timeline(&p) != 0)
		goto out;
	write_legend(&p);
	fputs("<main>\n", out);
	write_summary(&p);
	write_statistics(&p);
	if (write_findings(&p) != 0)
		goto out;
	fputs("<footer>Written by giltrace report --html. Self-contained: it loads nothing.</footer>\n</main>\n", out);
	fputs("<script>\n", out);
	fputs(html_page_js, out);
	fputs("</script>\n</body>\n</html>\n", out);
	status = 0;
out:
	lanes_free(&p.lanes);
	free(p.finding_shown);
	return status;
}
