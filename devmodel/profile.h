/*
 * profile.h - the hardware profiles npu-emu can emulate.
 *
 * Concepts: a profile fixes what a real server looks like to software: the SoC
 * name, the number of devices per server and their HBM capacity, and how many
 * servers the SuperPoD holds (A3 only).  Profiles are constant data.
 */
#ifndef DEVMODEL_PROFILE_H
#define DEVMODEL_PROFILE_H

#include <stdint.h>

typedef struct EmuProfile {
    const char *name;        /* "a2", "a3" */
    const char *soc_name;    /* what aclrtGetSocName reports */
    const char *description;
    int devices_per_server;
    int max_servers;
    uint64_t hbm_bytes;      /* per device */
} EmuProfile;

/* The profile called `name`, or NULL. */
const EmuProfile *profile_find(const char *name);
/* NULL-terminated list of all profiles. */
const EmuProfile *const *profile_all(void);

#endif
