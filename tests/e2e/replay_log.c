/*
 * replay_log.c -- replays a dm-log-writes log onto a copy of the logged
 * device, so that a power loss can be checked at every point the kernel
 * told the disk "flush" (a test helper, not part of reimage).
 *
 * The log's format is the kernel's (drivers/md/dm-log-writes.c,
 * Documentation/admin-guide/device-mapper/log-writes.rst), little endian:
 *
 *   block 0      super: magic u64, version u64, nr_entries u64, sectorsize u32
 *   block 1...   per entry, one block holding
 *                  sector u64, nr_sectors u64, flags u64, data_len u64
 *                  (a mark's name follows in the same block, data_len bytes),
 *                then nr_sectors blocks of data unless the entry is a discard.
 *
 * A "block" is the data device's logical sector size (sectorsize); entry
 * sectors count in blocks too.  Entries are in the order the writes
 * completed, a flush entry after everything it made durable (the kernel
 * holds completed writes back until the next flush), so replaying entries
 * 0..N-1 onto the device's initial image gives the disk as it stood after
 * entry N-1: at a flush or FUA entry, a state a power cut may leave.
 * nr_entries in the super counts up to the last FUA or mark; entries after
 * it (none when the target was removed cleanly) are not read.
 *
 *   replay_log list LOG
 *     "entries N sectorsize S", then one line per flush, FUA or mark
 *     entry: "<count> <flags> [<mark name>]", count being the number of
 *     entries to replay to include it.
 *   replay_log replay LOG IMAGE FROM TO
 *     writes entries FROM..TO-1 onto IMAGE (already holding entries
 *     0..FROM-1), so a sweep replays each stretch between two points once.
 *
 * Exit 0, 1 on a malformed log or a failed write (with the reason), 2 on
 * usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_MAGIC 0x6a736677736872ULL
#define LOG_VERSION 1
#define FLAG_FLUSH (1u << 0)
#define FLAG_FUA (1u << 1)
#define FLAG_DISCARD (1u << 2)
#define FLAG_MARK (1u << 3)
#define ENTRY_SIZE 32

struct log {
	int fd;
	uint64_t size;          /* of the log file: every read is checked */
	uint64_t nr_entries;
	uint32_t sectorsize;
	uint64_t pos;           /* byte offset of the next entry's block */
	uint64_t index;         /* that entry's number */
	unsigned char *block;   /* sectorsize bytes */
};

struct entry {
	uint64_t sector, nr_sectors, flags, data_len;
	uint64_t data_pos;      /* where its data is in the log */
	char mark[256];
};

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("replay_log: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	return -1;
}

static uint64_t le64(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Exactly len bytes at off, or -1: a log cut short is malformed. */
static int read_at(int fd, void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int write_at(int fd, const void *buf, size_t len, uint64_t off)
{
	size_t done = 0;
	while (done < len) {
		ssize_t n = pwrite(fd, (const char *)buf + done, len - done,
				   (off_t)(off + done));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += (size_t)n;
	}
	return 0;
}

static int log_open(struct log *lg, const char *path)
{
	unsigned char super[28];
	struct stat st;

	memset(lg, 0, sizeof(*lg));
	lg->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (lg->fd < 0 || fstat(lg->fd, &st) < 0)
		return fail("%s: %s", path, strerror(errno));
	lg->size = (uint64_t)st.st_size;
	if (read_at(lg->fd, super, sizeof(super), 0) < 0)
		return fail("%s: no super block", path);
	if (le64(super) != LOG_MAGIC || le64(super + 8) != LOG_VERSION)
		return fail("%s: not a dm-log-writes log (magic or version)", path);
	lg->nr_entries = le64(super + 16);
	lg->sectorsize = le32(super + 24);
	/* The kernel logs in the device's logical block size: a power of two
	 * the mark name and the entry header fit in. */
	if (lg->sectorsize < 512 || lg->sectorsize > 65536 ||
	    (lg->sectorsize & (lg->sectorsize - 1)))
		return fail("%s: bad sector size %" PRIu32, path, lg->sectorsize);
	lg->block = malloc(lg->sectorsize);
	if (!lg->block)
		return fail("out of memory");
	lg->pos = lg->sectorsize;
	return 0;
}

static void log_close(struct log *lg)
{
	if (lg->fd >= 0)
		close(lg->fd);
	free(lg->block);
}

/* The next entry into e; 1 when there is none, -1 if the log is malformed. */
static int log_next(struct log *lg, struct entry *e)
{
	uint64_t data;

	if (lg->index >= lg->nr_entries)
		return 1;
	if (read_at(lg->fd, lg->block, lg->sectorsize, lg->pos) < 0)
		return fail("entry %" PRIu64 " is past the end of the log", lg->index);
	e->sector = le64(lg->block);
	e->nr_sectors = le64(lg->block + 8);
	e->flags = le64(lg->block + 16);
	e->data_len = le64(lg->block + 24);
	e->mark[0] = '\0';
	if (e->flags & FLAG_MARK) {
		if (e->data_len >= sizeof(e->mark) ||
		    e->data_len > lg->sectorsize - ENTRY_SIZE)
			return fail("entry %" PRIu64 ": mark of %" PRIu64 " bytes",
				    lg->index, e->data_len);
		memcpy(e->mark, lg->block + ENTRY_SIZE, e->data_len);
		e->mark[e->data_len] = '\0';
	}
	data = (e->flags & FLAG_DISCARD) ? 0 : e->nr_sectors;
	if (data > (lg->size - lg->pos) / lg->sectorsize)
		return fail("entry %" PRIu64 ": %" PRIu64 " sectors of data past "
			    "the end of the log", lg->index, data);
	e->data_pos = lg->pos + lg->sectorsize;
	lg->pos = e->data_pos + data * lg->sectorsize;
	lg->index++;
	return 0;
}

static const char *flag_names(uint64_t flags, char *buf, size_t cap)
{
	static const struct { uint64_t bit; const char *name; } names[] = {
		{ FLAG_FLUSH, "flush" }, { FLAG_FUA, "fua" },
		{ FLAG_DISCARD, "discard" }, { FLAG_MARK, "mark" },
	};
	size_t k = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (flags & names[i].bit)
			k += (size_t)snprintf(buf + k, cap - k, "%s%s",
					      k ? "," : "", names[i].name);
	if (!k)
		snprintf(buf, cap, "write");
	return buf;
}

static int cmd_list(const char *path)
{
	struct log lg;
	struct entry e;
	char flags[64];
	int r;

	if (log_open(&lg, path) < 0) {
		log_close(&lg);
		return 1;
	}
	printf("entries %" PRIu64 " sectorsize %" PRIu32 "\n", lg.nr_entries,
	       lg.sectorsize);
	while ((r = log_next(&lg, &e)) == 0)
		if (e.flags & (FLAG_FLUSH | FLAG_FUA | FLAG_MARK))
			printf("%" PRIu64 " %s%s%s\n", lg.index,
			       flag_names(e.flags, flags, sizeof(flags)),
			       e.mark[0] ? " " : "", e.mark);
	log_close(&lg);
	return r < 0;
}

/* A discarded range reads back as zeros from a loop device on a file (the
 * kernel punches a hole), so the replay zeroes it too. */
static int zero_range(int fd, uint64_t off, uint64_t len)
{
	static const unsigned char zeros[65536];
#ifdef FALLOC_FL_PUNCH_HOLE
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off,
		      (off_t)len) == 0)
		return 0;
#endif
	while (len) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		if (write_at(fd, zeros, n, off) < 0)
			return -1;
		off += n;
		len -= n;
	}
	return 0;
}

static int apply(struct log *lg, const struct entry *e, int img, uint64_t img_size)
{
	uint64_t off = e->sector * lg->sectorsize;
	uint64_t len = e->nr_sectors * lg->sectorsize;

	if (!len)
		return 0;
	if (e->sector > img_size / lg->sectorsize || len > img_size - off)
		return fail("entry %" PRIu64 " writes past the end of the image",
			    lg->index - 1);
	if (e->flags & FLAG_DISCARD)
		return zero_range(img, off, len) < 0 ?
		       fail("discard: %s", strerror(errno)) : 0;
	errno = 0;
	for (uint64_t done = 0; done < len; done += lg->sectorsize)
		if (read_at(lg->fd, lg->block, lg->sectorsize, e->data_pos + done) < 0 ||
		    write_at(img, lg->block, lg->sectorsize, off + done) < 0)
			return fail("entry %" PRIu64 ": %s", lg->index - 1,
				    errno ? strerror(errno) : "short read");
	return 0;
}

static int parse_count(const char *s, uint64_t *v)
{
	char *end;
	errno = 0;
	*v = strtoull(s, &end, 10);
	return (errno || !*s || *end || *s == '-') ? -1 : 0;
}

static int cmd_replay(const char *path, const char *image, const char *from_s,
		      const char *to_s)
{
	struct log lg;
	struct entry e;
	struct stat st;
	uint64_t from, to;
	int img = -1, r = 0;

	if (parse_count(from_s, &from) < 0 || parse_count(to_s, &to) < 0 || from > to) {
		fail("FROM and TO are entry counts, FROM <= TO");
		return 2;
	}
	if ((r = log_open(&lg, path)) < 0)
		goto out;
	if (to > lg.nr_entries) {
		r = fail("%s holds %" PRIu64 " entries, not %" PRIu64, path,
			 lg.nr_entries, to);
		goto out;
	}
	img = open(image, O_RDWR | O_CLOEXEC);
	if (img < 0 || fstat(img, &st) < 0) {
		r = fail("%s: %s", image, strerror(errno));
		goto out;
	}
	while (lg.index < to && (r = log_next(&lg, &e)) == 0)
		if (lg.index > from && (r = apply(&lg, &e, img, (uint64_t)st.st_size)) < 0)
			break;
out:
	if (img >= 0 && close(img) < 0 && r == 0)
		r = fail("%s: %s", image, strerror(errno));
	log_close(&lg);
	return r != 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "list"))
		return cmd_list(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "replay"))
		return cmd_replay(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr, "usage: replay_log list LOG\n"
			"       replay_log replay LOG IMAGE FROM TO\n");
	return 2;
}
