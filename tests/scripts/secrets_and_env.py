import glob
import os


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"{type(exc).__name__}"


def main():
    environ_files = {path: read(path) for path in glob.glob("/proc/*/environ")}
    return {
        "environ": dict(os.environ),
        "proc_environ": environ_files,
        "shadow": read("/etc/shadow"),
        "passwd": read("/etc/passwd"),
        "service_main": read("__SERVICE_MAIN__"),
        "service_dir_exists": os.path.exists("__SERVICE_DIR__"),
        "root_entries": sorted(os.listdir("/")),
        "opt_entries": sorted(os.listdir("/opt/pyexec")),
        "usr_entries": sorted(os.listdir("/usr")),
        "usr_local_etc": os.path.exists("/usr/local/etc"),
        "proc_cmdline": read("/proc/cmdline"),
        "proc_keys": read("/proc/keys"),
        "proc_loadavg": read("/proc/loadavg"),
        "proc_pressure": os.listdir("/proc/pressure") if os.path.isdir("/proc/pressure") else [],
        "uid": os.getuid(),
        "gid": os.getgid(),
        "groups": os.getgroups(),
        "cap_lines": [
            line for line in read("/proc/self/status").splitlines() if line.startswith("Cap")
        ],
        "proc_pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "cmdline_1": read("/proc/1/cmdline")[:60],
        "sys_exists": os.path.exists("/sys/class/net"),
        "hostname": os.uname().nodename,
    }
