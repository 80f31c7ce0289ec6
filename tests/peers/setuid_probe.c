/* A setuid-root helper run from inside a lockdown (tests/lockdown_bypass.rs): does the
 * setuid bit give it root, capabilities, or a way into another namespace? Prints
 * `reached …` / `blocked …` lines like lockdown_probe.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    uid_t uid = getuid(), euid = geteuid();
    if (euid == 0 && uid != 0)
        printf("reached euid 0 from uid %d\n", (int)uid);
    else
        printf("blocked setuid: euid %d uid %d\n", (int)euid, (int)uid);

    char line[256];
    FILE *f = fopen("/proc/self/status", "r");
    while (f && fgets(line, sizeof line, f)) {
        if (strncmp(line, "CapEff:", 7) == 0) {
            unsigned long long caps = strtoull(line + 7, NULL, 16);
            printf("%s capabilities %llx\n", caps ? "reached" : "blocked", caps);
        }
    }
    if (f) fclose(f);

    if (argc > 1) {
        int fd = open(argv[1], O_RDONLY);
        if (fd < 0)
            printf("blocked open %s %s\n", argv[1], strerror(errno));
        else if (setns(fd, 0) == 0)
            printf("reached setns %s\n", argv[1]);
        else
            printf("blocked setns %s %s\n", argv[1], strerror(errno));
    }
    fflush(stdout);
    return 0;
}
