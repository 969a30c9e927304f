/*
 * meta.c - s3fs-compatible attribute headers and file-name checks (see meta.h).
 */
#include "fs/meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Parse an unsigned decimal that must fill the whole string. */
static int parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -1;
	*out = v;
	return 0;
}

int fs_meta_parse(const struct s3_meta *m, struct fs_attr *a)
{
	const char *v;
	uint64_t n;
	int mask = 0;

	v = s3_meta_get(m, "mode");
	if (v && parse_u64(v, &n) == 0 && n <= 0177777) {
		mode_t t = (mode_t)n & S_IFMT;
		if (t == S_IFREG || t == S_IFDIR || t == S_IFLNK) {
			a->mode = (mode_t)n;
			mask |= FS_META_MODE;
		} else if (t == 0) {
			/* some tools store permissions only */
			a->mode = (a->mode & S_IFMT) | ((mode_t)n & 07777);
			mask |= FS_META_MODE;
		}
	}
	v = s3_meta_get(m, "uid");
	if (v && parse_u64(v, &n) == 0 && n <= UINT32_MAX) {
		a->uid = (uid_t)n;
		mask |= FS_META_UID;
	}
	v = s3_meta_get(m, "gid");
	if (v && parse_u64(v, &n) == 0 && n <= UINT32_MAX) {
		a->gid = (gid_t)n;
		mask |= FS_META_GID;
	}
	v = s3_meta_get(m, "mtime");
	if (v) {
		const char *dot = strchr(v, '.');
		char secs[32];
		size_t len = dot ? (size_t)(dot - v) : strlen(v);
		if (len && len < sizeof(secs)) {
			memcpy(secs, v, len);
			secs[len] = '\0';
			if (parse_u64(secs, &n) == 0 && n < (1ULL << 40)) {
				long nsec = 0;
				if (dot) {
					/* a fraction as rclone writes it: up to 9 digits */
					int digits = 0;
					for (const char *p = dot + 1; *p >= '0' && *p <= '9' && digits < 9; p++, digits++)
						nsec = nsec * 10 + (*p - '0');
					for (; digits < 9; digits++)
						nsec *= 10;
				}
				a->mtime.tv_sec = (time_t)n;
				a->mtime.tv_nsec = nsec;
				mask |= FS_META_MTIME;
				v = s3_meta_get(m, "mtime-nsec");
				if (v && parse_u64(v, &n) == 0 && n < 1000000000)
					a->mtime.tv_nsec = (long)n;
			}
		}
	}
	return mask;
}

int fs_meta_build(const struct fs_attr *a, struct s3_meta *m)
{
	char v[32];
	int rc = 0;

	snprintf(v, sizeof(v), "%u", (unsigned)a->mode);
	rc |= s3_meta_set(m, "mode", v);
	snprintf(v, sizeof(v), "%u", (unsigned)a->uid);
	rc |= s3_meta_set(m, "uid", v);
	snprintf(v, sizeof(v), "%u", (unsigned)a->gid);
	rc |= s3_meta_set(m, "gid", v);
	snprintf(v, sizeof(v), "%lld", (long long)a->mtime.tv_sec);
	rc |= s3_meta_set(m, "mtime", v);
	snprintf(v, sizeof(v), "%ld", a->mtime.tv_nsec);
	rc |= s3_meta_set(m, "mtime-nsec", v);
	return rc ? -1 : 0;
}

int fs_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > 255)
		return 0;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c == '/' || c < 0x20 || c == 0x7f)
			return 0;
	}
	return 1;
}
