/* The engine's pool of shared-memory objects (chaos_shm_open): runs reuse the sets' objects
 * instead of creating and unlinking a file in /dev/shm each time, which is only sound if a
 * reused object behaves as a fresh one and the resources oracle still sees a name a run
 * left behind. Covered here: a fresh object's size and mode, EEXIST and ENOENT, zeros in a
 * reused object, an unlinked object still mapped by the other side never handed out again,
 * a name left bound through the end of a run, and runs of a scenario that reuse one object
 * and never show anything in /dev/shm. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "chaos/chaos.h"
#include "chaos/scenario.h"
#include "t_test.h"
#include "vdi/vdi_seams.h"

#define LEN (64u << 10)

static int in_dev_shm(const char *shm_name) {
    char path[300];
    struct stat st;
    snprintf(path, sizeof path, "/dev/shm%s", shm_name);
    return stat(path, &st) == 0;
}

/* Entries of /dev/shm of this process's scenarios (their sets are named chaos-PID-N). */
static int scenario_files(void) {
    char stem[160], prefix[64];
    snprintf(prefix, sizeof prefix, "chaos-%ld-", (long)getpid());
    T_REQUIRE(vdi_seam_shm_name(stem, sizeof stem, NULL, prefix) == 0);
    DIR *d = opendir("/dev/shm");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, stem + 1, strlen(stem + 1)) == 0;
    if (d)
        closedir(d);
    return n;
}

static void direct(void) {
    char a[160], b[160];
    T_REQUIRE(vdi_seam_shm_name(a, sizeof a, NULL, t_set_name("pool-a")) == 0);
    T_REQUIRE(vdi_seam_shm_name(b, sizeof b, NULL, t_set_name("pool-b")) == 0);
    errno = 0;
    T_EXPECT_EQ(chaos_shm_open(a, O_RDWR | O_CLOEXEC, 0), -1);
    T_EXPECT_EQ(errno, ENOENT);
    errno = 0;
    T_EXPECT_EQ(chaos_shm_unlink(a), -1);
    T_EXPECT_EQ(errno, ENOENT);

    mode_t old = umask(022);
    int fd = chaos_shm_open(a, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    umask(old);
    T_REQUIRE(fd >= 0);
    struct stat st;
    T_REQUIRE(fstat(fd, &st) == 0);
    T_EXPECT_EQ(st.st_size, 0);
    T_EXPECT_EQ(st.st_mode & 07777, 0644); /* the mode asked for, less the umask */
    T_EXPECT_EQ(st.st_uid, getuid());
    T_EXPECT(chaos_shm_bound(a));
    T_EXPECT(!in_dev_shm(a));
    errno = 0;
    T_EXPECT_EQ(chaos_shm_open(a, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600), -1);
    T_EXPECT_EQ(errno, EEXIST);
    int ro = chaos_shm_open(a, O_RDONLY | O_CLOEXEC, 0);
    T_REQUIRE(ro >= 0);
    T_EXPECT_EQ(fcntl(ro, F_GETFL) & O_ACCMODE, O_RDONLY);
    T_EXPECT(fcntl(ro, F_GETFD) & FD_CLOEXEC);
    close(ro);

    T_REQUIRE(ftruncate(fd, LEN) == 0);
    uint8_t *p = mmap(NULL, LEN, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    T_REQUIRE(p != MAP_FAILED);
    memset(p, 0xa5, LEN);
    munmap(p, LEN);
    close(fd);
    T_EXPECT_EQ(chaos_shm_unlink(a), 0);
    T_EXPECT(!chaos_shm_bound(a));
    errno = 0;
    T_EXPECT_EQ(chaos_shm_open(a, O_RDWR | O_CLOEXEC, 0), -1);
    T_EXPECT_EQ(errno, ENOENT);

    /* The next create gets that object back, empty: ftruncate gives zeros. */
    unsigned long made, reused, made2, reused2;
    chaos_shm_pool_stats(&made, &reused);
    chaos_shm_recycle();
    fd = chaos_shm_open(b, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    T_REQUIRE(fd >= 0);
    chaos_shm_pool_stats(&made2, &reused2);
    T_EXPECT_EQ(made2, made);
    T_EXPECT_EQ(reused2, reused + 1);
    T_REQUIRE(fstat(fd, &st) == 0);
    T_EXPECT_EQ(st.st_size, 0);
    T_REQUIRE(ftruncate(fd, LEN) == 0);
    p = mmap(NULL, LEN, PROT_READ, MAP_SHARED, fd, 0);
    T_REQUIRE(p != MAP_FAILED);
    size_t nonzero = 0;
    for (size_t i = 0; i < LEN; i++)
        nonzero += p[i] != 0;
    T_EXPECT_EQ(nonzero, 0);
    munmap(p, LEN);
    close(fd);
    T_EXPECT_EQ(chaos_shm_unlink(b), 0);
    chaos_shm_recycle();
}

/* How many distinct pooled objects this process maps (from /proc/self/maps). */
static int mapped_objects(void) {
    FILE *f = fopen("/proc/self/maps", "r");
    unsigned long ino[64];
    int n = 0;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        unsigned long i;
        if (!strstr(line, "memfd:vdichaos-pool") || sscanf(line, "%*s %*s %*s %*s %lu", &i) != 1)
            continue;
        int seen = 0;
        for (int k = 0; k < n; k++)
            seen |= ino[k] == i;
        if (!seen && n < 64)
            ino[n++] = i;
    }
    if (f)
        fclose(f);
    return n;
}

/* Through the reference: the objects of a set under an engine with the pool. */
static void through_the_reference(void) {
    chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 1, .shm_pool = 1};
    chaos_engine *e = chaos_engine_new(&cfg);
    T_REQUIRE(e);
    chaos_seams_install(e);
    char name[96], shm[160], name2[96];
    snprintf(name, sizeof name, "%s", t_set_name("pool-ref"));
    snprintf(name2, sizeof name2, "%s", t_set_name("pool-ref"));
    T_REQUIRE(vdi_seam_shm_name(shm, sizeof shm, NULL, name) == 0);
    VDConfig vc = {.deviceCount = 1};
    vdi_client_set *c = vdi_client_set_new(), *c2 = vdi_client_set_new();
    vdi_server_set *s = vdi_server_set_new();
    T_REQUIRE(c && c2 && s);
    T_EXPECT_OK(vdi_client_set_create(c, name, &vc));
    T_EXPECT(chaos_shm_bound(shm));
    T_EXPECT(!in_dev_shm(shm));
    T_EXPECT_EQ(vdi_client_set_create(c2, name, &vc), VD_E_BUSY); /* a live creator */
    T_EXPECT_OK(vdi_server_set_open(s, NULL, name));

    /* The creator's close unlinks the name while the server still maps the object: it
     * must not be handed to the next create, whose ftruncate would empty it under the
     * server's view. */
    (void)vdi_client_set_close(c);
    T_EXPECT(!chaos_shm_bound(shm));
    T_EXPECT_EQ(mapped_objects(), 1); /* the server's view */
    chaos_shm_recycle();
    T_EXPECT_OK(vdi_client_set_create(c2, name2, &vc));
    T_EXPECT_EQ(mapped_objects(), 2); /* another object for the new set */
    (void)vdi_server_set_close(s);
    T_EXPECT_EQ(mapped_objects(), 1);
    T_EXPECT_OK(vdi_client_set_close(c2));

    /* A name still bound when the run ends stays bound (and the resources oracle reports
     * it, see chaos_scenario_run), as a file left in /dev/shm would stay. */
    T_EXPECT_OK(vdi_client_set_create(c, name, &vc));
    chaos_seams_install(NULL);
    chaos_engine_free(e); /* recycles the pool */
    T_EXPECT(chaos_shm_bound(shm));
    e = chaos_engine_new(&cfg);
    T_REQUIRE(e);
    chaos_seams_install(e);
    T_EXPECT_OK(vdi_client_set_close(c));
    T_EXPECT(!chaos_shm_bound(shm));
    chaos_seams_install(NULL);
    chaos_engine_free(e);
    vdi_client_set_free(c);
    vdi_client_set_free(c2);
    vdi_server_set_free(s);
}

/* Runs of a scenario reuse one object, and none of them leaves a file in /dev/shm. */
static void scenario_runs(void) {
    const chaos_scenario *sc = chaos_scenario_find("close-race");
    T_REQUIRE(sc);
    unsigned long made, reused, made2, reused2;
    chaos_shm_pool_stats(&made, &reused);
    int files = scenario_files();
    for (uint64_t seed = 1; seed <= 50; seed++) {
        chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = seed};
        chaos_result r;
        T_EXPECT_EQ(chaos_scenario_run(sc, &cfg, &r), 0);
        chaos_result_free(&r);
    }
    chaos_shm_pool_stats(&made2, &reused2);
    T_EXPECT(made2 - made <= 1);
    T_EXPECT(reused2 - reused >= 49);
    T_EXPECT_EQ(scenario_files(), files);
    /* VDICHAOS_SHM_POOL=0: the system's objects, as before the pool. */
    setenv("VDICHAOS_SHM_POOL", "0", 1);
    chaos_config cfg = {.strategy = CHAOS_RANDOM, .seed = 1};
    chaos_result r;
    T_EXPECT_EQ(chaos_scenario_run(sc, &cfg, &r), 0);
    chaos_result_free(&r);
    unsetenv("VDICHAOS_SHM_POOL");
    chaos_shm_pool_stats(&made, &reused);
    T_EXPECT_EQ(made, made2);
    T_EXPECT_EQ(reused, reused2);
}

int main(void) {
    direct();
    through_the_reference();
    scenario_runs();
    return t_done();
}
