/*
 * report-text.c: `giltrace report` as text, the report of report-data.h
 * laid out for a terminal.  See report-output.h.
 */
#include "report-output.h"

#include "findings-output.h"

/* The thread table's column widths, negative for left-aligned, 0 for the
 * last (unpadded) one. */
static const int column_width[REPORT_COLUMNS] = {
	[REPORT_COL_TID] = -8,
	[REPORT_COL_NAME] = -16,
	[REPORT_COL_HOLD] = 10,
	[REPORT_COL_WAIT] = 10,
	[REPORT_COL_BLOCKED] = 10,
	[REPORT_COL_ACQUISITIONS] = 8,
	[REPORT_COL_DROP_REQUESTS] = 8,
	[REPORT_COL_FORCED_SWITCHES] = 7,
	[REPORT_COL_GILS] = 5,
	[REPORT_COL_EXIT] = 0,
};

/* One line of the table: the cells, or the short titles if cells is NULL. */
static void print_table_line(FILE *out, const struct report *r, const char (*cells)[REPORT_CELL_SIZE])
{
	for (int c = 0; c < REPORT_COLUMNS; c++)
		if (r->column_shown[c])
			fprintf(out, "%s%*s", c == 0 || c == REPORT_COL_EXIT ? "  " : " ", column_width[c],
		        cells ? cells[c] : report_columns[c].short_title);
	fputc('\n', out);
}

static void print_finalization(FILE *out, const struct report_finalization *f)
{
	fprintf(out, "\n%s: %s\n", f->heading, f->said);
	if (f->epoch)
		for (int i = 0; i < REPORT_THREAD_LISTS; i++)
			fprintf(out, "  %s: %s\n", f->lists[i].label, f->lists[i].text);
	if (f->ended[0])
		fprintf(out, "  %s\n", f->ended);
}

void report_print_text(FILE *out, const struct report *r)
{
	const struct trace *t = r->t;
	const struct model *m = r->m;
	fprintf(out, "trace %s\n", t->path);
	fprintf(out, "  python %s, %s\n", r->python, r->process);
	if (r->writer)
		fprintf(out, "  written by giltrace %s\n", r->writer);
	if (r->provoked)
		fprintf(out, "  provoked: %s\n", r->provoked);
	if (r->truncated)
		fprintf(out, "  TRUNCATED: %s;\n  %s\n", r->truncated_why, r->truncated_read);
	for (size_t i = 0; i < t->note_count; i++)
		fprintf(out, "  note: %s\n", t->notes[i]);
	for (size_t i = 0; i < r->loss_count; i++)
		fprintf(out, "  %s\n", r->losses[i]);

	if (r->no_gil[0])
		fprintf(out, "\n%s\n", r->no_gil);
	for (size_t i = 0; i < r->gil_count; i++) {
		fprintf(out, "\n%s\n", r->gils[i].line);
		if (r->gils[i].lost[0])
			fprintf(out, "  %s\n", r->gils[i].lost);
		if (r->gils[i].enabled[0])
			fprintf(out, "  %s\n", r->gils[i].enabled);
	}
	fprintf(out, "%s %s  %s  %s  %s\n", r->handoffs, r->latency[0], r->latency[1], r->latency[2], r->latency[3]);
	fprintf(out, "%s\n", r->contention);

	fputc('\n', out);
	print_table_line(out, r, NULL);
	for (size_t i = 0; i < r->row_count; i++)
		print_table_line(out, r, r->rows[i].cell);

	for (size_t k = 0; k < r->finalization_count; k++)
		print_finalization(out, &r->finalizations[k]);
	if (r->model_errors_heading) {
		fprintf(out, "\n%s\n", r->model_errors_heading);
		for (size_t i = 0; i < m->error_count; i++)
			fprintf(out, "  %s\n", m->errors[i]);
	}
	fprintf(out, "\nfindings: %s\n", r->findings_count);
	fflush(out);
	findings_print_text(out, m, r->fs);
}
