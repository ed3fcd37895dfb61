/*
 * layout.c -- see layout.h.
 */
#include "layout.h"
#include "fsutil.h"

#include <stdio.h>

void layout_init(struct layout *L, const char *root)
{
	snprintf(L->root, sizeof(L->root), "%s", root);
	fs_join(L->dir, sizeof(L->dir), root, LAYOUT_DIR);
	fs_join(L->staging, sizeof(L->staging), L->dir, "new");
	fs_join(L->retired, sizeof(L->retired), L->dir, "old");
	fs_join(L->parking, sizeof(L->parking), L->dir, "xchg");
	fs_join(L->journal, sizeof(L->journal), L->dir, "journal");
	fs_join(L->plan, sizeof(L->plan), L->dir, "plan");
	fs_join(L->deleting, sizeof(L->deleting), L->dir, "deleting");
	fs_join(L->state, sizeof(L->state), L->dir, "state");
	fs_join(L->guard, sizeof(L->guard), L->dir, "guard");
	fs_join(L->trial, sizeof(L->trial), L->dir, "trial");
	fs_join(L->attempts, sizeof(L->attempts), L->dir, "attempts");
	fs_join(L->saved_init, sizeof(L->saved_init), L->dir, "init.saved");
	fs_join(L->fallback, sizeof(L->fallback), L->dir, "fallback");
}
