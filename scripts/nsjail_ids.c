/*
 * Linked into the nsjail that scripts/build_nsjail.sh builds (issue 20).
 *
 * nsjail resolves each id of --user and --group with getpwnam() or getgrnam()
 * before it reads the string as a number (user.cc, parseUid and parseGid), and the
 * service passes numbers only ("65534:<outer id>:1", pyexec/jail_ids.py). So every
 * jail's start made four NSS lookups of names like "65534": glibc tried the nscd
 * socket, read /etc/nsswitch.conf, /etc/passwd and /etc/group, and where
 * nsswitch.conf names systemd (Debian's default) loaded libnss_systemd and the
 * libraries it needs, relocating them, at every start.
 *
 * These two functions answer a name made only of digits at once: no such user or
 * group, as NSS answers on any host where no account is named by digits alone
 * (useradd refuses such names), and nsjail then takes the number, as it did. Any
 * other name goes to glibc's own function, found with dlsym(RTLD_NEXT) (in libc
 * itself since glibc 2.34: nothing more is linked).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>

__attribute__((used)) static const char PYEXEC_IDS_MARKER[] =
    "pyexec-nsjail: numeric user and group ids without NSS";

static int all_digits(const char *name) {
    if (name == NULL || *name == '\0') {
        return 0;
    }
    for (; *name != '\0'; name++) {
        if (*name < '0' || *name > '9') {
            return 0;
        }
    }
    return 1;
}

struct passwd *getpwnam(const char *name) {
    if (all_digits(name)) {
        return NULL;
    }
    struct passwd *(*glibc)(const char *) =
        (struct passwd * (*)(const char *)) dlsym(RTLD_NEXT, "getpwnam");
    return glibc == NULL ? NULL : glibc(name);
}

struct group *getgrnam(const char *name) {
    if (all_digits(name)) {
        return NULL;
    }
    struct group *(*glibc)(const char *) =
        (struct group * (*)(const char *)) dlsym(RTLD_NEXT, "getgrnam");
    return glibc == NULL ? NULL : glibc(name);
}
