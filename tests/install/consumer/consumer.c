/* A program of another project on the installed reference C API: a client set created,
 * closed and freed. */
#include <stdio.h>
#include <unistd.h>
#include <vdi/vdi.h>

int main(void) {
    vdi_client_set *set = vdi_client_set_new();
    if (!set)
        return 1;
    VDConfig cfg = {0};
    cfg.deviceCount = 1;
    char name[64];
    snprintf(name, sizeof name, "consumer-c-%ld", (long)getpid());
    int rc = vdi_client_set_create(set, name, &cfg);
    printf("create %s: %s\n", name, vdi_strerror(rc));
    int closed = rc == NOERROR ? vdi_client_set_close(set) : NOERROR;
    vdi_client_set_free(set);
    return rc == NOERROR && closed == NOERROR ? 0 : 1;
}
