/* vdi_seam_reclaim_dead: the shared memory of sets whose creator died with them open is
 * removed, by name prefix; a live creator's set, one still being set up (no identity yet,
 * younger than the grace) and the sets of other prefixes are kept. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "t_test.h"
#include "vdi/vdi_seams.h"

static char prefix[64], other[64];

static void path_of(char *out, size_t cap, const char *name) {
    char shm[160];
    T_REQUIRE(vdi_seam_shm_name(shm, sizeof shm, NULL, name) == 0);
    snprintf(out, cap, "/dev/shm%s", shm);
}

static int exists(const char *name) {
    char p[256];
    struct stat st;
    path_of(p, sizeof p, name);
    return stat(p, &st) == 0;
}

/* A child creates the set and exits with it open, as a crashed harness process does. */
static void die_with(const char *name) {
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        vdi_client_set *c = vdi_client_set_new();
        VDConfig cfg = {.deviceCount = 1};
        _exit(c && vdi_client_set_create(c, name, &cfg) == NOERROR ? 0 : 1);
    }
    int st = 0;
    T_REQUIRE(waitpid(pid, &st, 0) == pid);
    T_REQUIRE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void) {
    snprintf(prefix, sizeof prefix, "t-reclaim-%ld-", (long)getpid());
    snprintf(other, sizeof other, "t-reclaim-other-%ld-", (long)getpid());
    char dead1[96], dead2[96], live[96], young[96], elsewhere[96];
    snprintf(dead1, sizeof dead1, "%sdead1", prefix);
    snprintf(dead2, sizeof dead2, "%sdead2", prefix);
    snprintf(live, sizeof live, "%slive", prefix);
    snprintf(young, sizeof young, "%syoung", prefix);
    snprintf(elsewhere, sizeof elsewhere, "%sdead", other);
    die_with(dead1);
    die_with(dead2);
    die_with(elsewhere);
    T_REQUIRE(exists(dead1) && exists(dead2) && exists(elsewhere));
    vdi_client_set *c = vdi_client_set_new();
    VDConfig cfg = {.deviceCount = 1};
    T_REQUIRE(vdi_client_set_create(c, live, &cfg) == NOERROR);
    /* an object whose creator has not written its identity yet (just created) */
    char shm[256];
    T_REQUIRE(vdi_seam_shm_name(shm, sizeof shm, NULL, young) == 0);
    int fd = shm_open(shm, O_RDWR | O_CREAT | O_EXCL, 0600);
    T_REQUIRE(fd >= 0);
    close(fd);

    T_EXPECT_EQ(vdi_seam_reclaim_dead(prefix), 2);
    T_EXPECT(!exists(dead1) && !exists(dead2));
    T_EXPECT(exists(live));      /* its creator is this process */
    T_EXPECT(exists(young));     /* within the grace */
    T_EXPECT(exists(elsewhere)); /* another prefix */
    T_EXPECT_EQ(vdi_seam_reclaim_dead(prefix), 0);
    T_EXPECT_EQ(vdi_seam_reclaim_dead(NULL), 0);
    T_EXPECT_EQ(vdi_seam_reclaim_dead(other), 1);
    T_EXPECT(!exists(elsewhere));

    /* the live set is still usable, and closes as ever */
    T_EXPECT_OK(vdi_client_set_close(c));
    vdi_client_set_free(c);
    T_EXPECT(!exists(live));
    shm_unlink(shm);
    return t_done();
}
