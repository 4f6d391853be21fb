/* Commands and completions (VDI-SPEC 4, 8.11): the client's view of a command, the order
 * in which the agent delivers completions, what complete_command accepts, and that a
 * routine may re-send its own command. Backup data is only as correct as these rules. */
#include <sched.h>

#include "t_test.h"
#include "t_vdi.h"

/* The client may complete in any order; the agent delivers each device's completions
 * in the order the client made them, with the client's code, bytes and position. */
static void case_any_order(void) {
    t_set s;
    t_set_init(&s, "anyord", 1);
    t_set_to_active(&s);
    enum { N = 5 };
    t_cmd tc[N];
    uint8_t *buf[N];
    VDC_Command *c[N];
    for (int i = 0; i < N; i++) {
        T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf[i], 4096, 0) == NOERROR);
        t_cmd_init(&tc[i], &s.ledger, VDC_Write, 4096, 1000 * i, buf[i]);
        T_REQUIRE(t_send(s.sdev[0], &tc[i]) == NOERROR);
    }
    for (int i = 0; i < N; i++) {
        T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c[i]) == NOERROR);
        /* get_command returns the oldest undelivered command */
        T_EXPECT_EQ(c[i]->position, 1000 * i);
    }
    static const int order[N] = {3, 1, 4, 0, 2};
    for (int k = 0; k < N; k++) {
        int i = order[k];
        uint32_t code = i == 4 ? ERROR_DISK_FULL : ERROR_SUCCESS;
        T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c[i], code, (uint32_t)(100 + i),
                                                       (uint64_t)(5000 + i)));
    }
    t_ledger_wait(&s.ledger, N);
    for (int k = 0; k < N; k++) {
        int i = order[k];
        t_cmd snap = t_cmd_snapshot(&tc[i]);
        T_EXPECT_EQ(snap.calls, 1);
        T_EXPECT_EQ(snap.order, k);
        T_EXPECT_EQ(snap.code, i == 4 ? ERROR_DISK_FULL : ERROR_SUCCESS);
        T_EXPECT_EQ(snap.bytes, 100 + i);
        T_EXPECT_EQ(snap.out_position, 5000 + i);
    }
    t_set_finish(&s);
}

/* Completions of two devices: each device's are delivered in completion order. */
static void case_per_device(void) {
    t_set s;
    t_set_init(&s, "perdev", 2);
    t_set_to_active(&s);
    enum { N = 4 };
    t_cmd tc[2][N];
    VDC_Command *c[2][N];
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < N; i++) {
            t_cmd_init(&tc[d][i], &s.ledger, VDC_Flush, 0, 10 * d + i, NULL);
            T_REQUIRE(t_send(s.sdev[d], &tc[d][i]) == NOERROR);
        }
    for (int d = 0; d < 2; d++)
        for (int i = 0; i < N; i++)
            T_REQUIRE(vdi_client_device_get_command(s.cdev[d], VDI_INFINITE, &c[d][i]) == NOERROR);
    /* interleave: d0: 2,0,3,1 and d1: 1,3,0,2 */
    static const int o0[N] = {2, 0, 3, 1}, o1[N] = {1, 3, 0, 2};
    for (int k = 0; k < N; k++) {
        T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c[0][o0[k]], 0, 0, 0));
        T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[1], c[1][o1[k]], 0, 0, 0));
    }
    t_ledger_wait(&s.ledger, 2 * N);
    for (int k = 1; k < N; k++) {
        T_EXPECT(t_cmd_snapshot(&tc[0][o0[k - 1]]).order < t_cmd_snapshot(&tc[0][o0[k]]).order);
        T_EXPECT(t_cmd_snapshot(&tc[1][o1[k - 1]]).order < t_cmd_snapshot(&tc[1][o1[k]]).order);
    }
    t_set_finish(&s);
}

/* 8.11: commandCode and size as sent, position = inPosition, buffer = the client's
 * address of the same bytes (NULL when none); the view stays readable after completion. */
static void case_view(void) {
    t_set s;
    t_set_init(&s, "view", 1);
    t_set_to_active(&s);
    uint8_t *wbuf = NULL, *rbuf = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &wbuf, 4096, 0) == NOERROR);
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &rbuf, 4096, 0) == NOERROR);
    for (int i = 0; i < 4096; i++)
        wbuf[i] = (uint8_t)(i * 7 + 1);
    t_cmd w, r, m, sp;
    t_cmd_init(&w, &s.ledger, VDC_Write, 4096, 65536, wbuf);
    t_cmd_init(&r, &s.ledger, VDC_Read, 2048, 131072, rbuf);
    t_cmd_init(&m, &s.ledger, VDC_WriteMark, 3, -1, NULL);
    t_cmd_init(&sp, &s.ledger, VDC_SetPosition, VDC_End, 42, NULL);
    T_REQUIRE(t_send(s.sdev[0], &w) == NOERROR);
    T_REQUIRE(t_send(s.sdev[0], &r) == NOERROR);
    T_REQUIRE(t_send(s.sdev[0], &m) == NOERROR);
    T_REQUIRE(t_send(s.sdev[0], &sp) == NOERROR);

    VDC_Command *c = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->commandCode, VDC_Write);
    T_EXPECT_EQ(c->size, 4096);
    T_EXPECT_EQ(c->position, 65536);
    T_REQUIRE(c->buffer != NULL);
    T_EXPECT(memcmp(c->buffer, wbuf, 4096) == 0);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 4096, 65536));
    /* still readable after completion (4) */
    T_EXPECT_EQ(c->commandCode, VDC_Write);

    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->commandCode, VDC_Read);
    T_EXPECT_EQ(c->size, 2048);
    T_EXPECT_EQ(c->position, 131072);
    T_REQUIRE(c->buffer != NULL);
    memset(c->buffer, 0xa5, 2048);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 2048, 131072));
    t_ledger_wait(&s.ledger, 2);
    T_EXPECT_EQ(rbuf[0], 0xa5); /* the server sees the bytes the client wrote */
    T_EXPECT_EQ(rbuf[2047], 0xa5);
    T_EXPECT_EQ(t_cmd_snapshot(&r).bytes, 2048);

    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->commandCode, VDC_WriteMark);
    T_EXPECT_EQ(c->size, 3);
    T_EXPECT_EQ(c->position, -1);
    T_EXPECT(c->buffer == NULL);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0));

    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_EQ(c->commandCode, VDC_SetPosition);
    T_EXPECT_EQ(c->size, VDC_End);
    T_EXPECT_EQ(c->position, 42);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 42));
    t_ledger_wait(&s.ledger, 4);
    T_EXPECT_EQ(t_cmd_snapshot(&sp).out_position, 42);
    t_set_finish(&s);
}

/* complete_command's VD_E_INVALID cases (4); the command survives a rejected completion */
static void case_complete_invalid(void) {
    t_set s;
    t_set_init(&s, "cinv", 2);
    t_set_to_active(&s);
    uint8_t *buf = NULL;
    T_REQUIRE(vdi_server_set_allocate_buffer(s.server, &buf, 4096, 0) == NOERROR);
    t_cmd a, b;
    t_cmd_init(&a, &s.ledger, VDC_Write, 4096, 0, buf);
    t_cmd_init(&b, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(t_send(s.sdev[1], &b) == NOERROR);
    VDC_Command *ca = NULL, *cb = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &ca) == NOERROR);
    T_REQUIRE(vdi_client_device_get_command(s.cdev[1], VDI_INFINITE, &cb) == NOERROR);
    /* NULL device or command (8.1) */
    T_EXPECT_CODE(vdi_client_device_complete_command(NULL, ca, 0, 0, 0), VD_E_INVALID);
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], NULL, 0, 0, 0), VD_E_INVALID);
    /* an unknown pointer (complete_command never reads *cmd: a copy is unknown) */
    VDC_Command copy = *ca;
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], &copy, 0, 4096, 0), VD_E_INVALID);
    /* another device's command */
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], cb, 0, 0, 0), VD_E_INVALID);
    /* a data command reporting more bytes than its size (choice) */
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], ca, 0, 4097, 0), VD_E_INVALID);
    T_EXPECT_EQ(t_ledger_finished(&s.ledger), 0);
    /* the rejected attempts changed nothing: the real completions work */
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], ca, 0, 4096, 0));
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[1], cb, 0, 0, 0));
    /* completed twice */
    T_EXPECT_CODE(vdi_client_device_complete_command(s.cdev[0], ca, 0, 4096, 0), VD_E_INVALID);
    t_ledger_wait(&s.ledger, 2);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).bytes, 4096);
    T_EXPECT_EQ(t_cmd_snapshot(&b).calls, 1);
    t_set_finish(&s);
}

/* complete_command keeps working for delivered commands after VD_E_CLOSE (4), and the
 * agent's NOERROR return waits for that completion (Normally Terminated). */
static void case_complete_after_close(void) {
    t_set s;
    t_set_init(&s, "cafter", 1);
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    T_REQUIRE(vdi_server_device_close(s.sdev[0]) == NOERROR);
    VDC_Command *c = NULL, *c2 = NULL;
    T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
    T_EXPECT_CODE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c2), VD_E_CLOSE);
    T_EXPECT_EQ(atomic_load(&s.agent_done), 0); /* a command is still outstanding */
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0));
    T_EXPECT_OK(t_set_join_agent(&s));
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).code, ERROR_SUCCESS);
    T_EXPECT_EQ(t_cmd_snapshot(&a).agent_returned, 0);
    T_EXPECT_OK(vdi_server_set_close(s.server));
    T_EXPECT_OK(vdi_client_set_close(s.client));
    t_set_teardown(&s);
}

/* A routine may re-send its own VDS_Command (it is no longer outstanding when called). */
static int resend_left;
static vdi_server_device *resend_dev;
static void resend_hook(t_cmd *tc) {
    if (resend_left-- > 0) {
        int rc = vdi_server_device_send_command(resend_dev, &tc->cmd);
        if (rc != NOERROR) {
            fprintf(stderr, "re-send from the routine: %s\n", vdi_strerror(rc));
            resend_left = -100;
        }
    }
}

static void case_resend(void) {
    t_set s;
    t_set_init(&s, "resend", 1);
    t_set_to_active(&s);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    a.hook = resend_hook;
    resend_left = 3;
    resend_dev = s.sdev[0];
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    for (int i = 0; i < 4; i++) {
        VDC_Command *c = NULL;
        T_REQUIRE(vdi_client_device_get_command(s.cdev[0], VDI_INFINITE, &c) == NOERROR);
        T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], c, ERROR_SUCCESS, 0, 0));
        t_ledger_wait(&s.ledger, i + 1);
    }
    T_EXPECT_EQ(resend_left, -1);
    T_EXPECT_EQ(t_cmd_snapshot(&a).calls, 4);
    t_set_finish(&s);
}

/* At most one get_command per device at a time: a second concurrent one is PROTOCOL. */
typedef struct getter {
    vdi_client_device *dev;
    atomic_int done;
    int rc;
    VDC_Command *cmd;
} getter;

static void *getter_main(void *arg) {
    getter *g = arg;
    g->rc = vdi_client_device_get_command(g->dev, VDI_INFINITE, &g->cmd);
    atomic_store(&g->done, 1);
    return NULL;
}

static void case_concurrent_get(void) {
    t_set s;
    t_set_init(&s, "cget", 1);
    t_set_to_active(&s);
    getter g;
    memset(&g, 0, sizeof g);
    g.dev = s.cdev[0];
    pthread_t th = t_spawn(getter_main, &g);
    int saw_protocol = 0;
    for (unsigned long i = 0; i < 100000000ul && !saw_protocol; i++) {
        VDC_Command *c = NULL;
        int rc = vdi_client_device_get_command(s.cdev[0], 0, &c);
        if (rc == VD_E_PROTOCOL) {
            saw_protocol = 1;
            break;
        }
        T_REQUIRE(rc == VD_E_TIMEOUT);
        if (atomic_load(&g.done)) {
            /* our poll was the one inside: the thread got PROTOCOL; that proves the
             * rule as well, from the other side */
            t_join(th);
            T_EXPECT_CODE(g.rc, VD_E_PROTOCOL);
            saw_protocol = g.rc == VD_E_PROTOCOL;
            g.done = 0;
            th = t_spawn(getter_main, &g);
        }
        sched_yield();
    }
    T_EXPECT(saw_protocol);
    t_cmd a;
    t_cmd_init(&a, &s.ledger, VDC_Flush, 0, 0, NULL);
    T_REQUIRE(t_send(s.sdev[0], &a) == NOERROR);
    t_join(th);
    T_EXPECT_OK(g.rc);
    T_EXPECT_OK(vdi_client_device_complete_command(s.cdev[0], g.cmd, ERROR_SUCCESS, 0, 0));
    t_ledger_wait(&s.ledger, 1);
    t_set_finish(&s);
}

int main(int argc, char **argv) {
    static const t_case cases[] = {
        {"any_order", case_any_order},
        {"per_device", case_per_device},
        {"view", case_view},
        {"complete_invalid", case_complete_invalid},
        {"complete_after_close", case_complete_after_close},
        {"resend", case_resend},
        {"concurrent_get", case_concurrent_get},
    };
    int rc = t_run_cases(argc, argv, cases, (int)(sizeof cases / sizeof cases[0]));
    return rc ? rc : t_done();
}
