/*
 * docs.h: where giltrace's documentation is, wherever giltrace runs.
 *
 * Findings end with "see DIR/findings.md#id" and the help texts with the
 * folder: a path that exists on this machine, found from the executable's
 * own place (/proc/self/exe): an installed giltrace (`make install`,
 * PREFIX/bin) has PREFIX/share/doc/giltrace; one run from a checkout
 * (build/giltrace, build/san/giltrace) has the checkout's docs/.
 */
#ifndef GILTRACE_DOCS_H
#define GILTRACE_DOCS_H

/* The documentation folder, absolute, without a trailing slash; "docs"
 * (relative, as in a checkout) when neither is there. */
const char *docs_dir(void);

#endif
