/* A power cut for one process's files: an LD_PRELOAD shim that remembers, for every regular
 * file under JIANCHA_POWERCUT_ROOT, its content as of the last fsync()/fdatasync() — what a
 * disk would still hold after the power fails. tests/powercut/__init__.py builds it with gcc,
 * SIGKILLs the process and writes the remembered content back over each file ("the cut"):
 * every write the process did not sync is lost, exactly as the page cache would lose it.
 *
 *   gcc -shared -fPIC -O2 -o powercut.so powercut.c -ldl -lpthread
 *   JIANCHA_POWERCUT_ROOT=/abs/data JIANCHA_POWERCUT_SHADOW=/abs/shadow LD_PRELOAD=powercut.so ...
 *
 * How: before the first write to a file under the root (write, pwrite, writev, ftruncate) the
 * shim copies the file's current content to SHADOW/<dev>-<inode> (the baseline: what was on
 * disk before this process touched it); after each successful fsync/fdatasync of such a file
 * it copies the file's content there again (atomically: a temporary file, then rename). unlink
 * and rename-over drop the shadow of the file they remove. Memory-mapped writes (SQLite's
 * -shm) are not seen: the cut deletes -shm files, which SQLite rebuilds from the WAL.
 * Simplifications (documented in docs/testing.md): creating, renaming and deleting files is
 * taken as durable at once (a journaled file system commits metadata within seconds); a sync
 * is all or nothing. It chains with other LD_PRELOAD shims (the clock shift): it wraps only
 * the calls above and always calls the next definition (RTLD_NEXT).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

typedef ssize_t (*write_fn)(int, const void *, size_t);
typedef ssize_t (*pwrite_fn)(int, const void *, size_t, off_t);
typedef ssize_t (*writev_fn)(int, const struct iovec *, int);
typedef int (*ftruncate_fn)(int, off_t);
typedef int (*fsync_fn)(int);
typedef int (*unlink_fn)(const char *);
typedef int (*unlinkat_fn)(int, const char *, int);
typedef int (*rename_fn)(const char *, const char *);
typedef int (*renameat_fn)(int, const char *, int, const char *);

static write_fn real_write;
static pwrite_fn real_pwrite, real_pwrite64;
static writev_fn real_writev;
static ftruncate_fn real_ftruncate, real_ftruncate64;
static fsync_fn real_fsync, real_fdatasync;
static unlink_fn real_unlink;
static unlinkat_fn real_unlinkat;
static rename_fn real_rename;
static renameat_fn real_renameat;

static char root[PATH_MAX], shadow[PATH_MAX];
static size_t root_len;
static volatile int ready;
static pthread_mutex_t lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;

#define SEEN_MAX 4096
static struct { dev_t dev; ino_t ino; int tracked; } seen[SEEN_MAX];
static int seen_n;

static void init(void) {
    if (ready) return;
    real_write = (write_fn)dlsym(RTLD_NEXT, "write");
    real_pwrite = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite");
    real_pwrite64 = (pwrite_fn)dlsym(RTLD_NEXT, "pwrite64");
    real_writev = (writev_fn)dlsym(RTLD_NEXT, "writev");
    real_ftruncate = (ftruncate_fn)dlsym(RTLD_NEXT, "ftruncate");
    real_ftruncate64 = (ftruncate_fn)dlsym(RTLD_NEXT, "ftruncate64");
    real_fsync = (fsync_fn)dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = (fsync_fn)dlsym(RTLD_NEXT, "fdatasync");
    real_unlink = (unlink_fn)dlsym(RTLD_NEXT, "unlink");
    real_unlinkat = (unlinkat_fn)dlsym(RTLD_NEXT, "unlinkat");
    real_rename = (rename_fn)dlsym(RTLD_NEXT, "rename");
    real_renameat = (renameat_fn)dlsym(RTLD_NEXT, "renameat");
    const char *r = getenv("JIANCHA_POWERCUT_ROOT"), *s = getenv("JIANCHA_POWERCUT_SHADOW");
    if (r && s && strlen(r) + 2 < sizeof root && strlen(s) + 64 < sizeof shadow) {
        strcpy(root, r);
        strcpy(shadow, s);
        root_len = strlen(root);
        if (root_len && root[root_len - 1] != '/') root[root_len++] = '/';
    }
    ready = 1;
}

__attribute__((constructor)) static void powercut_init(void) { init(); }

static int under_root(const char *path) {
    return root_len && strncmp(path, root, root_len) == 0;
}

static void shadow_name(char *out, dev_t dev, ino_t ino) {
    snprintf(out, PATH_MAX, "%s/%llu-%llu", shadow, (unsigned long long)dev, (unsigned long long)ino);
}

/* Copy the whole content of fd to the shadow of (dev, ino): a temporary file, then rename.
 * The file is opened again through /proc for reading (fd may be write-only). */
static void copy_to_shadow(int fd, dev_t dev, ino_t ino) {
    char dst[PATH_MAX], tmp[PATH_MAX + 32], link[64];
    shadow_name(dst, dev, ino);
    snprintf(tmp, sizeof tmp, "%s.%d.tmp", dst, (int)getpid());
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    int in = open(link, O_RDONLY | O_CLOEXEC);
    if (in < 0) return;
    int out = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (out < 0) { close(in); return; }
    char buf[65536];
    off_t off = 0;
    for (;;) {
        ssize_t n = pread(in, buf, sizeof buf, off);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        for (ssize_t done = 0; done < n;) {
            ssize_t w = real_write(out, buf + done, (size_t)(n - done));
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) { close(in); close(out); real_unlink(tmp); return; }
            done += w;
        }
        off += n;
    }
    close(in);
    close(out);
    real_rename(tmp, dst);
}

static int lookup(dev_t dev, ino_t ino) {
    for (int i = 0; i < seen_n; i++)
        if (seen[i].dev == dev && seen[i].ino == ino) return i;
    return -1;
}

/* Before a write: is fd a file under the root? The first time, remember its baseline. */
static int track(int fd) {
    init();
    if (!root_len) return 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
    int saved = errno, tracked = 0;
    pthread_mutex_lock(&lock);
    int i = lookup(st.st_dev, st.st_ino);
    if (i >= 0) {
        tracked = seen[i].tracked;
    } else {
        char link[64], path[PATH_MAX];
        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        ssize_t n = readlink(link, path, sizeof path - 1);
        if (n > 0) {
            path[n] = 0;
            tracked = under_root(path);
        }
        if (tracked) {
            char dst[PATH_MAX];
            shadow_name(dst, st.st_dev, st.st_ino);
            if (access(dst, F_OK) != 0) copy_to_shadow(fd, st.st_dev, st.st_ino);
        }
        if (seen_n < SEEN_MAX) {
            seen[seen_n].dev = st.st_dev;
            seen[seen_n].ino = st.st_ino;
            seen[seen_n].tracked = tracked;
            seen_n++;
        }
    }
    pthread_mutex_unlock(&lock);
    errno = saved;
    return tracked;
}

/* After a successful sync: the file's content is what the disk holds. */
static void synced(int fd) {
    if (!track(fd)) return;
    struct stat st;
    if (fstat(fd, &st) != 0) return;
    int saved = errno;
    pthread_mutex_lock(&lock);
    copy_to_shadow(fd, st.st_dev, st.st_ino);
    pthread_mutex_unlock(&lock);
    errno = saved;
}

/* A file under the root is about to go (unlink, or rename over it): forget its shadow. */
static void forget(int dirfd, const char *path) {
    init();
    if (!root_len || !path) return;
    struct stat st;
    int saved = errno;
    if (fstatat(dirfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode)) {
        pthread_mutex_lock(&lock);
        int i = lookup(st.st_dev, st.st_ino);
        if (i >= 0 && seen[i].tracked) {
            char dst[PATH_MAX];
            shadow_name(dst, st.st_dev, st.st_ino);
            real_unlink(dst);
        }
        if (i >= 0) seen[i] = seen[--seen_n];
        pthread_mutex_unlock(&lock);
    }
    errno = saved;
}

ssize_t write(int fd, const void *buf, size_t n) { track(fd); return real_write(fd, buf, n); }
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) { track(fd); return real_pwrite(fd, buf, n, off); }
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) { track(fd); return real_pwrite64(fd, buf, n, off); }
ssize_t writev(int fd, const struct iovec *iov, int cnt) { track(fd); return real_writev(fd, iov, cnt); }
int ftruncate(int fd, off_t len) { track(fd); return real_ftruncate(fd, len); }
int ftruncate64(int fd, off_t len) { track(fd); return real_ftruncate64(fd, len); }

int fsync(int fd) {
    init();
    int rc = real_fsync(fd);
    if (rc == 0) synced(fd);
    return rc;
}

int fdatasync(int fd) {
    init();
    int rc = real_fdatasync(fd);
    if (rc == 0) synced(fd);
    return rc;
}

int unlink(const char *path) { forget(AT_FDCWD, path); return real_unlink(path); }
int unlinkat(int dirfd, const char *path, int flags) { forget(dirfd, path); return real_unlinkat(dirfd, path, flags); }
int rename(const char *a, const char *b) { forget(AT_FDCWD, b); return real_rename(a, b); }
int renameat(int da, const char *a, int db, const char *b) { forget(db, b); return real_renameat(da, a, db, b); }
