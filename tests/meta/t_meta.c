/* The runner of the seeded-bug tests: every scenario under PCT and random for a fixed
 * budget of seeds. With an oracle name, the build's reference carries a seeded bug and the
 * test passes only when some run ends in a finding by that oracle (and prints how many
 * runs it took); with "none", the reference is clean and every run must pass. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "chaos/scenario.h"
#include "t_test.h"

int main(int argc, char **argv) {
    T_REQUIRE(argc == 3);
    const char *want = argv[1];
    unsigned budget = (unsigned)atoi(argv[2]);
    int clean = strcmp(want, "none") == 0;
    size_t n;
    const chaos_scenario *sc = chaos_scenarios(&n);
    unsigned runs = 0, found = 0;
    for (size_t i = 0; i < n && !found; i++) {
        for (int strat = 0; strat < 2 && !found; strat++) {
            for (unsigned k = 1; k <= budget && !found; k++) {
                chaos_config cfg = {.strategy = strat ? CHAOS_RANDOM : CHAOS_PCT,
                                    .seed = k,
                                    .pct_depth = 3,
                                    .pct_steps = 200};
                chaos_result r;
                runs++;
                if (chaos_scenario_run(&sc[i], &cfg, &r)) {
                    printf("run %u (%s, %s, seed %u): %s\n", runs, sc[i].name,
                           strat ? "random" : "pct", k, r.text);
                    found = 1;
                    if (!clean)
                        T_EXPECT(strncmp(r.text, want, strlen(want)) == 0);
                }
                chaos_result_free(&r);
            }
        }
    }
    /* A seeded bug may leave a set's name behind (that is what some of them do): remove
     * this process's names so the suite leaves nothing in /dev/shm. */
    char prefix[96];
    snprintf(prefix, sizeof prefix, "vdichaos-%u-.-chaos-%ld-", (unsigned)getuid(), (long)getpid());
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
    if (clean) {
        T_EXPECT_EQ(found, 0);
        printf("clean reference: %u runs, no finding\n", runs);
    } else {
        T_EXPECT_EQ(found, 1);
        printf("seeded bug caught by '%s' after %u runs\n", want, runs);
    }
    return t_done();
}
