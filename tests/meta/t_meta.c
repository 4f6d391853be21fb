/* The runner of the seeded-bug tests: every scenario under PCT and random for a fixed
 * budget of seeds. With an oracle name, the build's reference carries a seeded bug and the
 * test passes only when some run ends in a finding by that oracle (and prints how many
 * runs it took); with "none", the reference is clean and every run must pass.
 *
 * Some bugs are caught by what ends the process rather than by an oracle of the engine:
 * the unmap guard ("use-after-unmap"), ASan ("heap-use-after-free") or TSan ("data-race",
 * run with halt_on_error). So the search runs in a child, this program again with
 * --search, which writes to a file each run before it starts and each finding; the parent
 * judges the finding, or the child's death and its report, and names the run it came
 * from. A child that dies must leave the engine's report of the run it died in, and a
 * replay file of that run (VDICHAOS_CRASH_FILE): every way a run ends ends in a report. A
 * bug that needs a sanitizer the build lacks is skipped (exit 77). */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "chaos/scenario.h"
#include "t_test.h"
#include "vdi/vdi_seams.h"

#define MAX_RUNS 10000u /* the budget of every seeded bug, all scenarios and strategies */

/* The child: the search itself. Each run is announced on fd before it starts, so that a
 * run that kills the process is still known; a finding is written there as one line. */
static int search(const char *want, unsigned budget, int fd, int access_points) {
    size_t n;
    const chaos_scenario *sc = chaos_scenarios(&n);
    unsigned runs = 0;
    /* Seed by seed across every scenario and strategy: a bug one scenario finds at its
     * first seeds is found within a few dozen runs, wherever that scenario is listed. */
    for (unsigned k = 1; k <= budget; k++) {
        for (size_t i = 0; i < n; i++) {
            for (int strat = 0; strat < 2; strat++) {
                chaos_config cfg = {.strategy = strat ? CHAOS_RANDOM : CHAOS_PCT,
                                    .seed = k,
                                    .pct_depth = 3,
                                    .pct_steps = access_points ? 600 : 200,
                                    .access_points = access_points};
                chaos_result r;
                runs++;
                dprintf(fd, "run %u %s %s %u\n", runs, sc[i].name, strat ? "random" : "pct", k);
                if (chaos_scenario_run(&sc[i], &cfg, &r)) {
                    for (char *p = r.text; *p; p++)
                        if (*p == '\n')
                            *p = ' ';
                    dprintf(fd, "found %s\n", r.text);
                    chaos_result_free(&r);
                    return 0;
                }
                chaos_result_free(&r);
            }
        }
    }
    (void)want;
    return 0;
}

/* The whole content of a file descriptor (from its start), NUL-terminated; NULL if none. */
static char *slurp(int fd) {
    off_t len = lseek(fd, 0, SEEK_END);
    if (len < 0)
        return NULL;
    char *buf = malloc((size_t)len + 1);
    if (!buf)
        return NULL;
    ssize_t got = pread(fd, buf, (size_t)len, 0);
    buf[got > 0 ? got : 0] = 0;
    return buf;
}

/* What ended the child when no oracle reported: the name of the report it left. */
static const char *classify(const char *err, int status) {
    if (strstr(err, "use-after-unmap"))
        return "use-after-unmap";
    if (strstr(err, "Sanitizer: heap-use-after-free"))
        return "heap-use-after-free";
    if (strstr(err, "ThreadSanitizer: data race"))
        return "data-race";
    if (strstr(err, "Sanitizer") || strstr(err, "runtime error"))
        return "sanitizer";
    return WIFSIGNALED(status) ? "crash" : "exit";
}

/* A seeded bug may leave a set's name behind (that is what some of them do), and a child
 * that died left its sets: remove the child's names so the suite leaves nothing in
 * /dev/shm. The prefix is the library's own object name of a set named "chaos-PID-", so
 * it follows the library's spelling. */
static void remove_names(pid_t pid) {
    char set[48], shm[96];
    snprintf(set, sizeof set, "chaos-%ld-", (long)pid);
    T_REQUIRE(vdi_seam_shm_name(shm, sizeof shm, NULL, set) == 0);
    const char *prefix = shm + 1; /* the file under /dev/shm is the name after its '/' */
    DIR *d = opendir("/dev/shm");
    struct dirent *de;
    while (d && (de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0) {
            char path[300];
            snprintf(path, sizeof path, "/%s", de->d_name);
            shm_unlink(path);
        }
    if (d)
        closedir(d);
}

/* Run the search in a child with its stderr kept; halt TSan at its first report. */
static pid_t spawn_search(const char *self, const char *want, const char *budget, int progress,
                          int err, const char *crash_file, int access_points) {
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    dup2(err, 2);
    setenv("VDICHAOS_CRASH_FILE", crash_file, 1);
    const char *tsan = getenv("TSAN_OPTIONS");
    char opts[512];
    snprintf(opts, sizeof opts, "%s%shalt_on_error=1", tsan ? tsan : "", tsan ? ":" : "");
    setenv("TSAN_OPTIONS", opts, 1);
    char fd[16];
    snprintf(fd, sizeof fd, "%d", progress);
    execl("/proc/self/exe", self, "--search", want, budget, fd, access_points ? "1" : "0",
          (char *)NULL);
    perror("exec");
    _exit(127);
}

int main(int argc, char **argv) {
    if (argc == 6 && strcmp(argv[1], "--search") == 0)
        return search(argv[2], (unsigned)atoi(argv[3]), atoi(argv[4]), atoi(argv[5]));
    /* t_meta ORACLE BUDGET [--access-points]: the search with a point before every atomic
     * access of a shared word (chaos_config.access_points), for bugs in such a window. */
    T_REQUIRE(argc == 3 || (argc == 4 && strcmp(argv[3], "--access-points") == 0));
    int access_points = argc == 4;
    const char *want = argv[1];
    unsigned budget = (unsigned)atoi(argv[2]);
    int clean = strcmp(want, "none") == 0;
    size_t n;
    (void)chaos_scenarios(&n);
    T_REQUIRE(budget > 0 && n * 2 * budget <= MAX_RUNS); /* the budget of the issue */
#ifndef T_ASAN
    if (strcmp(want, "heap-use-after-free") == 0)
        T_SKIP("this seeded bug is caught by AddressSanitizer, not in this build");
#endif
#ifndef T_TSAN
    if (strcmp(want, "data-race") == 0)
        T_SKIP("this seeded bug is caught by ThreadSanitizer, not in this build");
#endif
    int progress = memfd_create("meta-progress", 0), err = memfd_create("meta-stderr", 0);
    T_REQUIRE(progress >= 0 && err >= 0);
    char crash_file[128];
    snprintf(crash_file, sizeof crash_file, "meta-%ld.crash.replay", (long)getpid());
    unlink(crash_file);
    pid_t pid = spawn_search(argv[0], want, argv[2], progress, err, crash_file, access_points);
    T_REQUIRE(pid > 0);
    int status;
    T_REQUIRE(waitpid(pid, &status, 0) == pid);
    int crash_replay = access(crash_file, R_OK) == 0;
    unlink(crash_file);
    remove_names(pid);
    char *log = slurp(progress), *report = slurp(err);
    T_REQUIRE(log && report);

    /* The last run announced, and the finding if an oracle reported one. */
    char last[256] = "", *found = NULL;
    unsigned runs = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "run ", 4) == 0) {
            snprintf(last, sizeof last, "%s", line + 4);
            runs = (unsigned)atoi(line + 4);
        } else if (strncmp(line, "found ", 6) == 0) {
            found = line + 6;
        }
    }
    int died = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    char oracle[64] = "";
    if (found)
        snprintf(oracle, sizeof oracle, "%.*s", (int)strcspn(found, ":"), found);
    else if (died)
        snprintf(oracle, sizeof oracle, "%s", classify(report, status));
    if (died || (report[0] && !found)) /* the report of what ended the child, or stray output */
        fprintf(stderr, "%.6000s\n", report);
    if (died) { /* the engine said which run died, and wrote what replays it */
        T_EXPECT(strstr(report, "==chaos== the process dies in a run of") != NULL);
        T_EXPECT(crash_replay);
    }

    if (clean) {
        if (found)
            printf("run %s: %s\n", last, found);
        T_EXPECT_EQ(oracle[0], 0);
        printf("clean reference: %u runs, no finding\n", runs);
    } else {
        if (oracle[0])
            printf("run %s: %s\n", last, found ? found : oracle);
        if (strcmp(oracle, want) != 0)
            fprintf(stderr, "expected a finding by '%s', got %s\n", want,
                    oracle[0] ? oracle : "none");
        T_EXPECT(strcmp(oracle, want) == 0);
        if (strcmp(oracle, want) == 0)
            printf("seeded bug caught by '%s' after %u runs\n", want, runs);
        const char *text = getenv("META_FINDING_TEXT"); /* seeded_bug's TEXT */
        if (text && *text && !(found && strstr(found, text)))
            fprintf(stderr, "the finding does not say \"%s\"\n", text);
        T_EXPECT(!text || !*text || (found && strstr(found, text)));
    }
    free(log);
    free(report);
    return t_done();
}
