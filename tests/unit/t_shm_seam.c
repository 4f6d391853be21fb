/* The shm_open and shm_unlink seams: every opening and unlinking of a set's named object
 * goes through them, so a harness can hand out objects of its own (here memfds kept in a
 * table by name, never in /dev/shm) and the reference runs on them unchanged: create,
 * the server's open, the busy name, close's unlink. */
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "t_test.h"
#include "vdi/vdi_seams.h"

#define NOBJ 4
static struct {
    char name[128];
    int fd;
} obj[NOBJ];
static int creates, opens, unlinks;

static int find(const char *name) {
    for (int i = 0; i < NOBJ; i++)
        if (obj[i].fd > 0 && strcmp(obj[i].name, name) == 0)
            return i;
    return -1;
}

static int h_shm_open(void *ctx, const char *name, int oflag, mode_t mode) {
    (void)ctx;
    int i = find(name);
    if (oflag & O_CREAT) {
        if (i >= 0 && (oflag & O_EXCL)) {
            errno = EEXIST;
            return -1;
        }
        for (i = 0; i < NOBJ && obj[i].fd > 0; i++)
            ;
        T_REQUIRE(i < NOBJ);
        int fd = memfd_create("t-shm-seam", MFD_CLOEXEC);
        T_REQUIRE(fd >= 0);
        T_REQUIRE(fchmod(fd, mode) == 0);
        snprintf(obj[i].name, sizeof obj[i].name, "%s", name);
        obj[i].fd = fd;
        creates++;
        return dup(fd);
    }
    opens++;
    if (i < 0) {
        errno = ENOENT;
        return -1;
    }
    return dup(obj[i].fd);
}

static int h_shm_unlink(void *ctx, const char *name) {
    (void)ctx;
    int i = find(name);
    if (i < 0) {
        errno = ENOENT;
        return -1;
    }
    close(obj[i].fd);
    obj[i].fd = 0;
    unlinks++;
    return 0;
}

static int in_dev_shm(const char *name) {
    char shm[160], path[200];
    struct stat st;
    T_REQUIRE(vdi_seam_shm_name(shm, sizeof shm, NULL, name) == 0);
    snprintf(path, sizeof path, "/dev/shm%s", shm);
    return stat(path, &st) == 0;
}

int main(void) {
    vdi_seams seams = {.shm_open = h_shm_open, .shm_unlink = h_shm_unlink};
    vdi_seams_install(&seams);
    const char *name = t_set_name("shm-seam");
    VDConfig cfg = {.deviceCount = 1};

    vdi_client_set *c = vdi_client_set_new();
    T_REQUIRE(c);
    T_REQUIRE(vdi_client_set_create(c, name, &cfg) == NOERROR);
    T_EXPECT_EQ(creates, 1);
    char shm[160];
    T_REQUIRE(vdi_seam_shm_name(shm, sizeof shm, NULL, name) == 0);
    T_EXPECT(find(shm) >= 0); /* the hook was given the object's name */
    /* every name, of any instance, starts with the user's prefix (the /dev/shm scans') */
    char prefix[64], named[160];
    T_REQUIRE(vdi_seam_shm_prefix(prefix, sizeof prefix) == 0);
    T_EXPECT(prefix[0] == '/' && strncmp(shm, prefix, strlen(prefix)) == 0);
    T_REQUIRE(vdi_seam_shm_name(named, sizeof named, "other", name) == 0);
    T_EXPECT(strncmp(named, prefix, strlen(prefix)) == 0 && strcmp(named, shm) != 0);
    T_EXPECT_EQ(vdi_seam_shm_prefix(prefix, 4), -1); /* too small: refused, not cut */
    T_EXPECT_EQ(vdi_seam_shm_name(named, strlen(prefix) + 2, NULL, name), -1);
    T_EXPECT(!in_dev_shm(name));

    /* A second creator of the name: the object exists and its creator lives. */
    vdi_client_set *c2 = vdi_client_set_new();
    T_REQUIRE(c2);
    T_EXPECT_EQ(vdi_client_set_create(c2, name, &cfg), VD_E_BUSY);
    T_EXPECT_EQ(creates, 1);
    T_EXPECT(opens >= 1); /* the creator's liveness was read through the seam */

    /* The server opens the hook's object, and finds the control block the client wrote. */
    int before = opens;
    vdi_server_set *s = vdi_server_set_new();
    T_REQUIRE(s);
    T_EXPECT_OK(vdi_server_set_open(s, NULL, name));
    T_EXPECT_EQ(opens, before + 1);
    T_EXPECT_OK(vdi_server_set_close(s));
    vdi_server_set_free(s);

    /* A name nobody created is not there. */
    vdi_server_set *s2 = vdi_server_set_new();
    T_REQUIRE(s2);
    T_EXPECT_EQ(vdi_server_set_open(s2, NULL, t_set_name("shm-seam-none")), VD_E_INVALID);
    vdi_server_set_free(s2);

    /* The creator's close unlinks through the seam. */
    T_EXPECT_EQ(unlinks, 0);
    T_EXPECT_OK(vdi_client_set_close(c));
    T_EXPECT_EQ(unlinks, 1);
    for (int i = 0; i < NOBJ; i++)
        T_EXPECT_EQ(obj[i].fd, 0);
    vdi_client_set_free(c);
    vdi_client_set_free(c2);
    vdi_seams_install(NULL);
    return t_done();
}
