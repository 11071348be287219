#!/bin/bash
# The rail voltage from the board's INA219 on I2C bus 1 (address 0x40, bus voltage register 0x02):
# bits 15..3 count 4 mV steps. Prints edge_power_rail_volts.
set -euo pipefail
raw=$(i2cget -y 1 0x40 0x02 w)
swapped=$(( ((raw & 0xff) << 8) | ((raw >> 8) & 0xff) ))
printf 'power_rail_volts %.3f\n' "$(( (swapped >> 3) * 4 ))e-3"
