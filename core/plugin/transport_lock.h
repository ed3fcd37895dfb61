/*
 * transport_lock.h -- a transport's hooks as the core calls them: each
 * call of the plugin's own under the plugin's lock, so that a transport
 * is called from one thread at a time, as include/reimage/plugin.h
 * promises, whichever threads of the core use it.
 */
#ifndef REIMAGE_TRANSPORT_LOCK_H
#define REIMAGE_TRANSPORT_LOCK_H

struct plugin;

/* Once p's own init() ran (its context in p->own_ctx): p->transport
 * becomes the locking hooks, with the plugin's optional ones only, and
 * p->ctx the context they take.  0, or -ENOMEM. */
int transport_lock_start(struct plugin *p);
/* Before the plugin's fini(). */
void transport_lock_stop(struct plugin *p);

#endif
