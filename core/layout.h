/*
 * layout.h -- the names reimage keeps on the root, in one place:
 *   <root>/.reimage/          0700, never swapped
 *   <root>/.reimage/new       staging: the new image being prepared
 *   <root>/.reimage/old       retired: the old image after the swap
 *   <root>/.reimage/xchg      parking place of a three-move exchange
 *   <root>/.reimage/journal   the swap's journal
 *   <root>/.reimage/state     the job's phase, written before each phase
 */
#ifndef REIMAGE_LAYOUT_H
#define REIMAGE_LAYOUT_H

#include <limits.h>

#define LAYOUT_DIR ".reimage"

struct layout {
	char root[PATH_MAX];
	char dir[PATH_MAX];
	char staging[PATH_MAX];
	char retired[PATH_MAX];
	char parking[PATH_MAX];
	char journal[PATH_MAX];
	char state[PATH_MAX];
};

void layout_init(struct layout *L, const char *root);

#endif
