/* Names, instances and the shared object behind a set (VDI-SPEC 2.3, 7, 8.2 to 8.4):
 * which names are valid, that instances are separate namespaces, BUSY for a live name,
 * SECURITY for an object with the wrong mode or owner, and reclaiming the name of a
 * creator that died. These rules decide whether two backups can ever cross streams. */
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "t_test.h"
#include "t_vdi.h"

static int create_in(const char *instance, const char *name) {
    vdi_client_set *c = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, 1);
    int rc = vdi_client_set_create_ex(c, instance, name, &cfg);
    (void)vdi_client_set_close(c);
    vdi_client_set_free(c);
    return rc;
}

/* Set names: 1-127 bytes of 0x20-0x7E without '\' or '/'; otherwise INVALID. */
static void case_set_names(void) {
    char name[VDI_MAX_NAME + 2];
    const char *base = t_set_name("nm");
    size_t blen = strlen(base);
    memcpy(name, base, blen);
    memset(name + blen, 'x', sizeof name - blen);
    name[VDI_MAX_NAME] = 0; /* exactly 127 bytes */
    T_EXPECT_OK(create_in(NULL, name));
    name[VDI_MAX_NAME] = 'x';
    name[VDI_MAX_NAME + 1] = 0; /* 128 bytes */
    T_EXPECT_CODE(create_in(NULL, name), VD_E_INVALID);
    T_EXPECT_CODE(create_in(NULL, ""), VD_E_INVALID);
    char buf[80];
    static const char bad[] = {'/', '\\', 0x7f, 0x1f, '\n'};
    for (size_t i = 0; i < sizeof bad; i++) {
        snprintf(buf, sizeof buf, "%s%c", t_set_name("bad"), bad[i]);
        T_EXPECT_CODE(create_in(NULL, buf), VD_E_INVALID);
    }
    snprintf(buf, sizeof buf, "%s ~!@#$%%^&*()", t_set_name("ok"));
    T_EXPECT_OK(create_in(NULL, buf));
    snprintf(buf, sizeof buf, "%s\xc3\xa9", t_set_name("utf8"));
    T_EXPECT_CODE(create_in(NULL, buf), VD_E_INVALID);
}

/* Instance names: "" or a bad name is INSTANCE_NAME wherever an instance is taken. */
static void case_instances(void) {
    T_EXPECT_CODE(create_in("", t_set_name("i")), VD_E_INSTANCE_NAME);
    T_EXPECT_CODE(create_in("0123456789abcdefg", t_set_name("i")), VD_E_INSTANCE_NAME);
    T_EXPECT_CODE(create_in("a/b", t_set_name("i")), VD_E_INSTANCE_NAME);
    T_EXPECT_CODE(create_in("a\\b", t_set_name("i")), VD_E_INSTANCE_NAME);
    T_EXPECT_OK(create_in("0123456789abcdef", t_set_name("i")));
    /* bad instance before bad set name? both are parameters; the instance comes first
     * in the signature (8.1) */
    T_EXPECT_CODE(create_in("", ""), VD_E_INSTANCE_NAME);
    vdi_server_set *sv = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(sv, "", t_set_name("i")), VD_E_INSTANCE_NAME);
    T_EXPECT_CODE(vdi_server_set_open(sv, "0123456789abcdefg", t_set_name("i")),
                  VD_E_INSTANCE_NAME);
    vdi_server_set_free(sv);
    vdi_client_set *sec = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_open_in_secondary_ex(sec, "", t_set_name("i")),
                  VD_E_INSTANCE_NAME);
    vdi_client_set_free(sec);

    /* the same set name in three namespaces: default, "one", "two" */
    const char *name = t_set_name("ns");
    char n[96];
    snprintf(n, sizeof n, "%s", name);
    VDConfig cfg;
    t_config_default(&cfg, 1);
    vdi_client_set *c0 = vdi_client_set_new(), *c1 = vdi_client_set_new();
    T_EXPECT_OK(vdi_client_set_create_ex(c0, NULL, n, &cfg));
    T_EXPECT_OK(vdi_client_set_create_ex(c1, "one", n, &cfg));
    /* create(name) is create_ex(NULL, name): BUSY against the default one */
    vdi_client_set *c2 = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_create(c2, n, &cfg), VD_E_BUSY);
    vdi_server_set *s0 = vdi_server_set_new(), *s1 = vdi_server_set_new(),
                   *s2 = vdi_server_set_new();
    T_EXPECT_OK(vdi_server_set_open(s0, NULL, n));
    T_EXPECT_OK(vdi_server_set_open(s1, "one", n));
    T_EXPECT_CODE(vdi_server_set_open(s2, "two", n), VD_E_INVALID);
    /* instance names are case-sensitive */
    T_EXPECT_CODE(vdi_server_set_open(s2, "ONE", n), VD_E_INVALID);
    VDConfig a, b;
    T_EXPECT_OK(vdi_server_set_get_configuration(s0, &a));
    T_EXPECT_OK(vdi_server_set_get_configuration(s1, &b));
    T_EXPECT_OK(vdi_server_set_close(s0));
    T_EXPECT_OK(vdi_server_set_close(s1));
    T_EXPECT_OK(vdi_client_set_close(c0));
    T_EXPECT_OK(vdi_client_set_close(c1));
    vdi_server_set_free(s0);
    vdi_server_set_free(s1);
    vdi_server_set_free(s2);
    vdi_client_set_free(c0);
    vdi_client_set_free(c1);
    vdi_client_set_free(c2);
}

/* Set names are case-sensitive; an unknown name is INVALID for open. */
static void case_case_sensitive(void) {
    char up[96], low[96];
    const char *base = t_set_name("Case");
    snprintf(up, sizeof up, "%s", base);
    snprintf(low, sizeof low, "%s", base);
    low[2] = 'c'; /* "t-Case-..." vs "t-case-..." */
    VDConfig cfg;
    t_config_default(&cfg, 1);
    vdi_client_set *a = vdi_client_set_new(), *b = vdi_client_set_new();
    T_EXPECT_OK(vdi_client_set_create(a, up, &cfg));
    T_EXPECT_OK(vdi_client_set_create(b, low, &cfg));
    vdi_server_set *sv = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(sv, NULL, t_set_name("nosuch")), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open(sv, NULL, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_open(NULL, NULL, up), VD_E_INVALID);
    T_EXPECT_OK(vdi_server_set_open(sv, NULL, low));
    T_EXPECT_OK(vdi_server_set_close(sv));
    T_EXPECT_OK(vdi_client_set_close(a));
    T_EXPECT_OK(vdi_client_set_close(b));
    vdi_server_set_free(sv);
    vdi_client_set_free(a);
    vdi_client_set_free(b);
}

/* 8.4: BUSY for a name whose creator is alive, and for a second server (even after an
 * abort). 8.3: the object's name contains the set name. 7: mode 0600. */
static void case_busy(void) {
    t_set s;
    t_set_init(&s, "busy", 1);
    t_set_create(&s);
    char path[300];
    T_REQUIRE(t_shm_find(s.name, path, sizeof path));
    struct stat st;
    T_REQUIRE(stat(path, &st) == 0);
    T_EXPECT_EQ(st.st_mode & 07777, 0600);
    T_EXPECT_EQ(st.st_uid, geteuid());
    vdi_client_set *c2 = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_create(c2, s.name, &s.cfg), VD_E_BUSY);
    /* the failed create left c2 in DNE */
    T_EXPECT_CODE(vdi_client_set_close(c2), VD_E_PROTOCOL);
    vdi_client_set_free(c2);
    t_set_server_open(&s);
    vdi_server_set *s2 = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(s2, NULL, s.name), VD_E_BUSY);
    T_REQUIRE(vdi_server_set_signal_abort(s.server) == NOERROR);
    T_EXPECT_CODE(vdi_server_set_open(s2, NULL, s.name), VD_E_BUSY);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_server_set_get_configuration(s2, &cfg), VD_E_PROTOCOL);
    vdi_server_set_free(s2);
    t_set_teardown(&s);
    T_EXPECT_EQ(t_shm_count(s.name), 0);
}

/* 8.1 before 8.2: a NULL required pointer is INVALID before the state and before a bad
 * instance name; 8.4: a server whose premature close aborted the set is detached, so the
 * next server's open answers ABORT, not BUSY. (Both found by fuzz_api.) */
static void case_null_first_and_detached(void) {
    t_set s;
    t_set_init(&s, "nullfirst", 1);
    t_set_create(&s);
    T_EXPECT_CODE(vdi_client_set_create_ex(s.client, NULL, s.name, NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(s.client, NULL), VD_E_INVALID);
    vdi_client_set *c2 = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_create_ex(c2, "", NULL, &s.cfg), VD_E_INVALID);
    vdi_client_set_free(c2);
    t_set_server_open(&s);
    T_EXPECT_CODE(vdi_server_set_open(s.server, "", NULL), VD_E_INVALID);
    T_EXPECT_CODE(vdi_server_set_close(s.server), NOERROR); /* premature: aborts the set */
    vdi_server_set *s2 = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(s2, NULL, s.name), VD_E_ABORT);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_server_set_get_configuration(s2, &cfg), VD_E_PROTOCOL);
    vdi_server_set_free(s2);
    t_set_teardown(&s);
    T_EXPECT_EQ(t_shm_count(s.name), 0);
}

/* 7: open and open_in_secondary refuse an object whose mode is not 0600 (SECURITY). */
static void case_security_mode(void) {
    t_set s;
    t_set_init(&s, "sec", 1);
    t_set_create(&s);
    char path[300];
    T_REQUIRE(t_shm_find(s.name, path, sizeof path));
    T_REQUIRE(chmod(path, 0644) == 0);
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_SECURITY);
    VDConfig cfg;
    T_EXPECT_CODE(vdi_server_set_get_configuration(s.server, &cfg), VD_E_PROTOCOL);
    T_REQUIRE(chmod(path, 0600) == 0);
    t_set_server_open(&s);
    t_set_server_begin(&s);
    t_set_server_end(&s);
    t_set_client_config(&s);
    T_REQUIRE(chmod(path, 0660) == 0);
    vdi_client_set *sec = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, s.name), VD_E_SECURITY);
    T_REQUIRE(chmod(path, 0600) == 0);
    T_EXPECT_OK(vdi_client_set_open_in_secondary(sec, s.name));
    T_EXPECT_OK(vdi_client_set_close(sec));
    vdi_client_set_free(sec);
    t_set_teardown(&s);
}

/* 7, 8.4: a name pre-created by another user: create fails with SECURITY. Needs root to
 * hand the object to another user; skipped otherwise. */
static void case_security_owner(void) {
    if (geteuid() != 0)
        T_SKIP("needs root to give a shared object to another user");
    t_set s;
    t_set_init(&s, "own", 1);
    t_set_create(&s);
    char path[300];
    T_REQUIRE(t_shm_find(s.name, path, sizeof path));
    T_REQUIRE(chown(path, 65534, 65534) == 0);
    T_EXPECT_CODE(vdi_server_set_open(s.server, NULL, s.name), VD_E_SECURITY);
    T_REQUIRE(vdi_client_set_close(s.client) == NOERROR);
    /* the close may have unlinked it; put a foreign object in its place */
    if (!t_shm_count(s.name)) {
        int fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0600);
        T_REQUIRE(fd >= 0);
        T_REQUIRE(fchown(fd, 65534, 65534) == 0);
        close(fd);
    }
    vdi_client_set *c2 = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_create(c2, s.name, &s.cfg), VD_E_SECURITY);
    vdi_client_set_free(c2);
    unlink(path);
    t_set_teardown(&s);
}

/* 8.4: a creator that died: open says INVALID when no server came; create by the same
 * user removes the dead object and creates the set anew. */
static void case_dead_creator(void) {
    const char *base = t_set_name("dead");
    char name[96];
    snprintf(name, sizeof name, "%s", base);
    int p[2];
    T_REQUIRE(pipe(p) == 0);
    pid_t pid = fork();
    T_REQUIRE(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        vdi_client_set *c = vdi_client_set_new();
        VDConfig cfg;
        t_config_default(&cfg, 1);
        char ok = vdi_client_set_create(c, name, &cfg) == NOERROR ? 'y' : 'n';
        if (write(p[1], &ok, 1) != 1)
            _exit(2);
        for (;;)
            pause();
    }
    close(p[1]);
    char ok = 0;
    T_REQUIRE(read(p[0], &ok, 1) == 1 && ok == 'y');
    close(p[0]);
    T_REQUIRE(kill(pid, SIGKILL) == 0);
    int status = 0;
    T_REQUIRE(waitpid(pid, &status, 0) == pid);
    T_EXPECT(t_shm_count(name) > 0); /* it died without closing */
    vdi_server_set *sv = vdi_server_set_new();
    T_EXPECT_CODE(vdi_server_set_open(sv, NULL, name), VD_E_INVALID);
    vdi_client_set *sec = vdi_client_set_new();
    T_EXPECT_CODE(vdi_client_set_open_in_secondary(sec, name), VD_E_PROTOCOL);
    vdi_client_set_free(sec);
    /* reclaim: create anew, and the new set works */
    vdi_client_set *c = vdi_client_set_new();
    VDConfig cfg;
    t_config_default(&cfg, 1);
    T_EXPECT_OK(vdi_client_set_create(c, name, &cfg));
    T_EXPECT_OK(vdi_server_set_open(sv, NULL, name));
    T_EXPECT_OK(vdi_server_set_begin_configuration(sv, VDF_WriteMedia, 512, 0, 65536, 0));
    T_EXPECT_OK(vdi_server_set_end_configuration(sv));
    T_EXPECT_OK(vdi_client_set_get_configuration(c, 0, &cfg));
    T_EXPECT_OK(vdi_server_set_close(sv));
    T_EXPECT_OK(vdi_client_set_close(c));
    vdi_server_set_free(sv);
    vdi_client_set_free(c);
    T_EXPECT_EQ(t_shm_count(name), 0);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"set_names", case_set_names},           {"instances", case_instances},
        {"case_sensitive", case_case_sensitive}, {"busy", case_busy},
        {"security_mode", case_security_mode},   {"security_owner", case_security_owner},
        {"dead_creator", case_dead_creator},     {"null_first", case_null_first_and_detached},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
