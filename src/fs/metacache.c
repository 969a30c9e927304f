/*
 * metacache.c - the on-disk attribute cache (see metacache.h).
 *
 * Schema: attrs(key TEXT PRIMARY KEY, etag TEXT, last_modified INTEGER,
 * mode INTEGER, uid INTEGER, gid INTEGER, mtime_sec INTEGER, mtime_nsec
 * INTEGER). Statements are prepared once and used under the cache's mutex.
 */
#include "fs/metacache.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"

struct metacache {
	sqlite3 *db;
	pthread_mutex_t lock;
	sqlite3_stmt *get;      /* protected by lock */
	sqlite3_stmt *put;      /* protected by lock */
	sqlite3_stmt *del;      /* protected by lock */
	sqlite3_stmt *upgrade;  /* protected by lock */
	sqlite3_stmt *known;    /* protected by lock */
};

static const char schema[] =
	"PRAGMA journal_mode=WAL;"
	"PRAGMA synchronous=NORMAL;"
	"CREATE TABLE IF NOT EXISTS attrs ("
	" key TEXT PRIMARY KEY, etag TEXT NOT NULL, last_modified INTEGER NOT NULL,"
	" mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" mtime_sec INTEGER NOT NULL, mtime_nsec INTEGER NOT NULL);";

/* Open path and prepare the statements; NULL on any failure. */
static struct metacache *try_open(const char *path)
{
	struct metacache *mc = xcalloc(1, sizeof(*mc));

	if (sqlite3_open_v2(path, &mc->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
			    NULL) != SQLITE_OK)
		goto out_close;
	sqlite3_busy_timeout(mc->db, 2000);
	if (sqlite3_exec(mc->db, schema, NULL, NULL, NULL) != SQLITE_OK)
		goto out_close;
	if (sqlite3_prepare_v2(mc->db,
			       "SELECT last_modified, mode, uid, gid, mtime_sec, mtime_nsec FROM attrs "
			       "WHERE key = ?1 AND etag = ?2", -1, &mc->get, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(mc->db,
			       "INSERT OR REPLACE INTO attrs VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)", -1,
			       &mc->put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(mc->db, "DELETE FROM attrs WHERE key = ?1", -1, &mc->del, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(mc->db, "UPDATE attrs SET last_modified = ?2 WHERE key = ?1 AND last_modified = 0",
			       -1, &mc->upgrade, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(mc->db, "SELECT 1 FROM attrs WHERE key = ?1", -1, &mc->known, NULL) != SQLITE_OK)
		goto out_close;
	pthread_mutex_init(&mc->lock, NULL);
	return mc;
out_close:
	log_warn("metadata cache %s: %s", path, mc->db ? sqlite3_errmsg(mc->db) : "cannot open");
	sqlite3_finalize(mc->get);
	sqlite3_finalize(mc->put);
	sqlite3_finalize(mc->del);
	sqlite3_finalize(mc->upgrade);
	sqlite3_finalize(mc->known);
	sqlite3_close(mc->db);
	free(mc);
	return NULL;
}

struct metacache *metacache_open(const char *path)
{
	struct metacache *mc = try_open(path);

	if (!mc) {
		/* a corrupt or foreign file: start afresh, it is only a cache */
		char *wal = xasprintf("%s-wal", path), *shm = xasprintf("%s-shm", path);
		unlink(path);
		unlink(wal);
		unlink(shm);
		free(wal);
		free(shm);
		mc = try_open(path);
	}
	return mc;
}

void metacache_close(struct metacache *mc)
{
	if (!mc)
		return;
	sqlite3_finalize(mc->get);
	sqlite3_finalize(mc->put);
	sqlite3_finalize(mc->del);
	sqlite3_finalize(mc->upgrade);
	sqlite3_finalize(mc->known);
	sqlite3_close(mc->db);
	pthread_mutex_destroy(&mc->lock);
	free(mc);
}

/* metacache_get with the lock held. */
static int get_locked(struct metacache *mc, const char *key, const char *etag, time_t last_modified,
		      struct fs_attr *a)
{
	int found = 0;

	if (!etag || !*etag)
		return 0;
	sqlite3_bind_text(mc->get, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(mc->get, 2, etag, -1, SQLITE_STATIC);
	if (sqlite3_step(mc->get) == SQLITE_ROW) {
		sqlite3_int64 lm = sqlite3_column_int64(mc->get, 0);
		if (lm == 0 || lm == (sqlite3_int64)last_modified) {
			a->mode = (mode_t)sqlite3_column_int64(mc->get, 1);
			a->uid = (uid_t)sqlite3_column_int64(mc->get, 2);
			a->gid = (gid_t)sqlite3_column_int64(mc->get, 3);
			a->mtime.tv_sec = (time_t)sqlite3_column_int64(mc->get, 4);
			a->mtime.tv_nsec = (long)sqlite3_column_int64(mc->get, 5);
			found = 1;
		}
		if (found && lm == 0 && last_modified) {
			sqlite3_reset(mc->get);
			sqlite3_bind_text(mc->upgrade, 1, key, -1, SQLITE_STATIC);
			sqlite3_bind_int64(mc->upgrade, 2, (sqlite3_int64)last_modified);
			sqlite3_step(mc->upgrade);
			sqlite3_reset(mc->upgrade);
		}
	}
	sqlite3_reset(mc->get);
	return found;
}

int metacache_get(struct metacache *mc, const char *key, const char *etag, time_t last_modified,
		  struct fs_attr *a)
{
	int found;

	if (!mc)
		return 0;
	pthread_mutex_lock(&mc->lock);
	found = get_locked(mc, key, etag, last_modified, a);
	pthread_mutex_unlock(&mc->lock);
	return found;
}

void metacache_get_many(struct metacache *mc, struct metacache_query *q, size_t n)
{
	int txn;

	for (size_t i = 0; i < n; i++)
		q[i].found = 0;
	if (!mc || !n)
		return;
	pthread_mutex_lock(&mc->lock);
	txn = sqlite3_exec(mc->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
	for (size_t i = 0; i < n; i++)
		q[i].found = get_locked(mc, q[i].key, q[i].etag, q[i].last_modified, q[i].attr);
	if (txn && sqlite3_exec(mc->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		log_debug("metadata cache: %s", sqlite3_errmsg(mc->db));
		sqlite3_exec(mc->db, "ROLLBACK", NULL, NULL, NULL);
	}
	pthread_mutex_unlock(&mc->lock);
}

int metacache_known(struct metacache *mc, const char *key)
{
	int found;

	if (!mc)
		return 0;
	pthread_mutex_lock(&mc->lock);
	sqlite3_bind_text(mc->known, 1, key, -1, SQLITE_STATIC);
	found = sqlite3_step(mc->known) == SQLITE_ROW;
	sqlite3_reset(mc->known);
	pthread_mutex_unlock(&mc->lock);
	return found;
}

void metacache_put(struct metacache *mc, const char *key, const char *etag, time_t last_modified,
		   const struct fs_attr *a)
{
	if (!mc || !etag || !*etag)
		return;
	pthread_mutex_lock(&mc->lock);
	sqlite3_bind_text(mc->put, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_text(mc->put, 2, etag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(mc->put, 3, (sqlite3_int64)last_modified);
	sqlite3_bind_int64(mc->put, 4, (sqlite3_int64)a->mode);
	sqlite3_bind_int64(mc->put, 5, (sqlite3_int64)a->uid);
	sqlite3_bind_int64(mc->put, 6, (sqlite3_int64)a->gid);
	sqlite3_bind_int64(mc->put, 7, (sqlite3_int64)a->mtime.tv_sec);
	sqlite3_bind_int64(mc->put, 8, (sqlite3_int64)a->mtime.tv_nsec);
	if (sqlite3_step(mc->put) != SQLITE_DONE)
		log_debug("metadata cache: %s", sqlite3_errmsg(mc->db));
	sqlite3_reset(mc->put);
	pthread_mutex_unlock(&mc->lock);
}

void metacache_del(struct metacache *mc, const char *key)
{
	if (!mc)
		return;
	pthread_mutex_lock(&mc->lock);
	sqlite3_bind_text(mc->del, 1, key, -1, SQLITE_STATIC);
	sqlite3_step(mc->del);
	sqlite3_reset(mc->del);
	pthread_mutex_unlock(&mc->lock);
}
