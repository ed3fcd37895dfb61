/*
 * progress.c -- see progress.h.  Drawn on stderr, at most ten times a
 * second on a terminal and every ten seconds elsewhere, so that progress
 * never costs measurable time in the staging loop.
 */
#include "progress.h"
#include "error.h"
#include "log.h"

#include <errno.h>
#include <reimage/plugin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int64_t progress_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void progress_human(char *buf, size_t len, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	int u = 0;
	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

void progress_rate(const struct progress *p, double *ret_rate, int64_t *ret_eta_s)
{
	int64_t elapsed = progress_now_ms() - p->started_ms;
	double rate = elapsed > 0 ? (double)p->done * 1000.0 / (double)elapsed : 0;

	*ret_rate = rate;
	*ret_eta_s = -1;
	if (p->total != REIMAGE_SIZE_UNKNOWN && p->total >= p->done && rate > 0)
		*ret_eta_s = (int64_t)((double)(p->total - p->done) / rate + 0.5);
}

/* ", 1234 entries, 3.4 GiB expanded" when the writer counts them. */
static void written_text(const struct progress *p, char *buf, size_t len)
{
	char expanded[32];
	buf[0] = '\0';
	if (!p->entries || !p->expanded)
		return;
	progress_human(expanded, sizeof(expanded), *p->expanded);
	snprintf(buf, len, ", %llu entries, %s expanded", (unsigned long long)*p->entries,
		 expanded);
}

static void draw(struct progress *p, int final)
{
	char done[32], total[32], rate_s[32], written[96], eta_s[32] = "";
	double rate;
	int64_t eta;

	progress_rate(p, &rate, &eta);
	progress_human(done, sizeof(done), p->done);
	progress_human(rate_s, sizeof(rate_s), (uint64_t)rate);
	written_text(p, written, sizeof(written));
	if (eta >= 0 && !final)
		snprintf(eta_s, sizeof(eta_s), ", ETA %lld:%02lld", (long long)(eta / 60),
			 (long long)(eta % 60));
	if (p->tty) {
		char bar[31];
		int pct = -1;
		memset(bar, ' ', 30);
		bar[30] = '\0';
		if (p->total != REIMAGE_SIZE_UNKNOWN && p->total > 0) {
			pct = (int)(p->done * 100 / p->total);
			if (pct > 100)
				pct = 100;
			memset(bar, '#', (size_t)(pct * 30 / 100));
		}
		progress_human(total, sizeof(total), p->total);
		/* \033[K: a shorter line leaves nothing of the longer one before. */
		if (pct >= 0)
			fprintf(stderr, "\r%s [%s] %3d%% %s / %s%s, %s/s%s\033[K", p->what, bar, pct,
				done, total, written, rate_s, eta_s);
		else
			fprintf(stderr, "\r%s %s%s, %s/s\033[K", p->what, done, written, rate_s);
		if (final)
			fputc('\n', stderr);
		fflush(stderr);
	} else if (p->total != REIMAGE_SIZE_UNKNOWN && p->total > 0) {
		progress_human(total, sizeof(total), p->total);
		log_info("%s: %s of %s (%d%%)%s, %s/s%s", p->what, done, total,
			 (int)(p->done * 100 / p->total), written, rate_s, eta_s);
	} else {
		log_info("%s: %s%s, %s/s", p->what, done, written, rate_s);
	}
}

void progress_begin(struct progress *p, const char *what, uint64_t total)
{
	struct progress keep = *p;
	memset(p, 0, sizeof(*p));
	p->tick = keep.tick;
	p->tick_arg = keep.tick_arg;
	p->stop = keep.stop;
	p->entries = keep.entries;
	p->expanded = keep.expanded;
	p->active = 1;
	p->what = what;
	p->total = total;
	p->tty = isatty(STDERR_FILENO) && log_get_level() >= REIMAGE_LOG_NOTICE;
	p->started_ms = p->last_ms = p->last_tick_ms = progress_now_ms();
}

int progress_update(struct progress *p, uint64_t done)
{
	int64_t now;

	p->done = done;
	now = progress_now_ms();  /* vDSO clock: cheap enough per chunk */
	if (now - p->last_ms >= (p->tty ? 100 : 10000)) {
		p->last_ms = now;
		draw(p, 0);
	}
	if (p->tick && now - p->last_tick_ms >= 1000) {
		p->last_tick_ms = now;
		p->tick(p->tick_arg, p);
	}
	return p->stop && *p->stop ? -ECANCELED : 0;
}

int progress_step(struct progress *p, uint64_t done, struct reimage_error *err)
{
	if (!p || progress_update(p, done) == 0)
		return 0;
	err_set(err, -ECANCELED, REIMAGE_EC_STATE, "staging stopped on request");
	return -ECANCELED;
}

void progress_end(struct progress *p)
{
	if (!p->active)
		return;
	p->active = 0;
	draw(p, 1);
	if (p->tick)
		p->tick(p->tick_arg, p);
}
