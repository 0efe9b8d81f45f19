/*
 * html-index.c: the page of a run of several processes.  See html-index.h.
 */
#include "html-index.h"

#include "html-report.h"

void html_index_write(FILE *out, const struct html_index_row *rows, size_t n)
{
	fprintf(out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
	             "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	             "style-src 'unsafe-inline'\">\n"
	             "<title>giltrace: %zu processes</title>\n<style>\n"
	             "body{font:14px/1.45 system-ui,sans-serif;margin:16px;color:#212529}\n"
	             "ul{list-style:none;padding-left:1.5em;margin:0}\n"
	             ".started{color:#6c757d}.trace{color:#6c757d;font-size:12px}\n"
	             "</style>\n</head>\n<body>\n<h1>giltrace: %zu processes</h1>\n"
	             "<p>In the order they started, a child under its parent (each trace names its parent's "
	             "pid); each links to its own page: timeline, statistics, findings.</p>\n",
	        n, n);
	/* nested lists, a child's list inside its parent's item; the rows
	 * come in tree order, so depth grows by one at most */
	unsigned lists = 0;
	for (size_t i = 0; i < n; i++) {
		const struct html_index_row *r = &rows[i];
		if (r->depth + 1 > lists) {
			for (; lists < r->depth + 1; lists++)
				fputs("<ul>\n", out);
		} else {
			fputs("</li>\n", out);
			for (; lists > r->depth + 1; lists--)
				fputs("</ul></li>\n", out);
		}
		fputs("<li data-depth=\"", out);
		fprintf(out, "%u\">", r->depth);
		if (r->href) {
			fputs("<a href=\"", out);
			html_escape(out, r->href);
			fputs("\">", out);
		}
		html_escape(out, r->process);
		if (r->href)
			fputs("</a>", out);
		fputs(" <span class=\"started\">at +", out);
		html_escape(out, r->started);
		fputs("</span>: ", out);
		html_escape(out, r->verdict);
		fputs(" <span class=\"trace\">", out);
		html_escape(out, r->trace);
		fputs("</span>", out);
	}
	if (lists)
		fputs("</li>\n", out);
	for (; lists > 1; lists--)
		fputs("</ul></li>\n", out);
	if (lists)
		fputs("</ul>\n", out);
	fputs("</body>\n</html>\n", out);
}
