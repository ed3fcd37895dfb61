/*
 * layout.h -- the names reimage keeps on the root, in one place:
 *   <root>/.reimage/          0700, never swapped
 *   <root>/.reimage/new       staging: the new image being prepared
 *   <root>/.reimage/old       retired: the old image after the swap
 *   <root>/.reimage/xchg      parking place of a three-move exchange
 *   <root>/.reimage/journal   the swap's journal
 *   <root>/.reimage/plan      a copy of the journal's plan (read when the
 *                             journal is damaged or missing)
 *   <root>/.reimage/deleting  the retired image once confirm has begun
 *                             deleting it (no rollback from here on)
 *   <root>/.reimage/state     the job's phase, written before each phase
 * and the trial boot's (trial.h says what each holds):
 *   <root>/.reimage/guard       the static boot guard
 *   <root>/.reimage/trial       the armed trial: attempts allowed, inits
 *   <root>/.reimage/attempts    trial boots let through so far
 *   <root>/.reimage/init.saved  the new image's init entry, while the guard has its place
 *   <root>/.reimage/fallback    the guard's record of a fallback
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
	char plan[PATH_MAX];
	char deleting[PATH_MAX];
	char state[PATH_MAX];
	char guard[PATH_MAX];
	char trial[PATH_MAX];
	char attempts[PATH_MAX];
	char saved_init[PATH_MAX];
	char fallback[PATH_MAX];
};

void layout_init(struct layout *L, const char *root);

#endif
