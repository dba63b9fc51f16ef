/*
 * profile.c - A2 (Ascend 910B) and A3 (Ascend 910C) servers.
 */
#include "profile.h"

#include <string.h>

#include "npuemu/proto.h"

static const EmuProfile a2 = {
    .name = "a2",
    .soc_name = "Ascend910B1",
    .description = "Atlas A2 training server: 8 x Ascend 910B, 64 GiB HBM each, HCCS",
    .devices_per_server = 8,
    .max_servers = 1,
    .hbm_bytes = 64ull << 30,
};

static const EmuProfile a3 = {
    .name = "a3",
    .soc_name = "Ascend910_9391",
    .description = "Atlas A3 SuperPoD server: 16 x Ascend 910C dies, 64 GiB HBM each",
    .devices_per_server = 16,
    .max_servers = EMU_MAX_SERVERS,
    .hbm_bytes = 64ull << 30,
};

static const EmuProfile *const all[] = { &a2, &a3, NULL };

const EmuProfile *profile_find(const char *name)
{
    for (int i = 0; all[i]; i++)
        if (name && strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}

const EmuProfile *const *profile_all(void)
{
    return all;
}
