/*
 * power.h -- where a Linux machine draws its power from, read from the
 * kernel's power-supply class (shared by the posix backend and the core's
 * sandbox backend, which reads a directory given in its settings).
 */
#ifndef REIMAGE_POSIX_POWER_H
#define REIMAGE_POSIX_POWER_H

#include <reimage/plugin.h>

#define POSIX_POWER_SUPPLY_DIR "/sys/class/power_supply"

/* An enum reimage_power for the supplies under dir (a directory laid out
 * as /sys/class/power_supply): AC if a mains supply (type Mains, USB, ...)
 * is online; BATTERY if a battery is present and no mains supply is
 * online; UNKNOWN if dir holds neither (a desktop, a VM) or is missing. */
int posix_power(const char *dir);

#endif
