/* Move the wall clock of a process (and of every process it starts) by a fixed offset.
 *
 *   gcc -shared -fPIC -O2 -o shift.so shift.c -ldl
 *   JIANCHA_CLOCK_OFFSET_S=9244800 LD_PRELOAD=$PWD/shift.so python3 -c 'import datetime; print(datetime.datetime.now())'
 *
 * Only the wall clock moves: clock_gettime(CLOCK_REALTIME / CLOCK_REALTIME_COARSE),
 * gettimeofday() and time(). CLOCK_MONOTONIC, CLOCK_BOOTTIME, sleeps and timeouts are untouched
 * (Debian's libfaketime 0.9.10 also wraps sleeps and breaks time.sleep under Python 3.11).
 * The offset (whole seconds, may be negative) is read once from JIANCHA_CLOCK_OFFSET_S; the
 * variable and LD_PRELOAD are inherited by child processes, so a hub, its agents and Mosquitto
 * started by a test share the same shifted clock. Used by `bash .ci/bootstrap.sh test`.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>

typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef int (*gettimeofday_fn)(struct timeval *, void *);
typedef time_t (*time_fn)(time_t *);

static clock_gettime_fn real_clock_gettime;
static gettimeofday_fn real_gettimeofday;
static time_fn real_time;
static long long offset_s;
static volatile int ready;

static void init(void) {
    if (ready) return;
    real_clock_gettime = (clock_gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    real_gettimeofday = (gettimeofday_fn)dlsym(RTLD_NEXT, "gettimeofday");
    real_time = (time_fn)dlsym(RTLD_NEXT, "time");
    const char *v = getenv("JIANCHA_CLOCK_OFFSET_S");
    offset_s = v ? strtoll(v, NULL, 10) : 0;
    ready = 1;
}

__attribute__((constructor)) static void shift_init(void) { init(); }

int clock_gettime(clockid_t clk, struct timespec *ts) {
    init();
    int rc = real_clock_gettime(clk, ts);
    if (rc == 0 && ts && (clk == CLOCK_REALTIME || clk == CLOCK_REALTIME_COARSE))
        ts->tv_sec += offset_s;
    return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    init();
    int rc = real_gettimeofday(tv, tz);
    if (rc == 0 && tv)
        tv->tv_sec += offset_s;
    return rc;
}

time_t time(time_t *t) {
    init();
    time_t now = real_time(NULL);
    if (now != (time_t)-1)
        now += offset_s;
    if (t)
        *t = now;
    return now;
}
