#!/bin/bash
# bme280: Bosch BME280 temperature, pressure and humidity over I2C with i2c-tools: one forced-mode measurement
# per run (oversampling x1), compensated with the datasheet's integer formulas (BST-BME280-DS002, 4.2.3) from
# the calibration words the chip holds. Wiring, metrics and failures: docs/sensors.md.
#   BME280_I2C_BUS      I2C bus number (default 1)
#   BME280_I2C_ADDRESS  7-bit address (default 0x76; 0x77 when SDO is tied to VDDIO)
# Try it without the hardware:
#   edge-metrics simulate --model scripts/models/bme280.yaml -- bash scripts/sensors/bme280.sh
set -u
export LC_ALL=C # numbers with a decimal point, whatever the node's locale

chip=bme280
bus=${BME280_I2C_BUS:-1}
address=${BME280_I2C_ADDRESS:-0x76}

warn() { echo "$chip: $*" >&2; }
[[ $bus =~ ^[0-9]+$ ]] || { warn "BME280_I2C_BUS=$bus is not a bus number"; exit 2; }
[[ $address =~ ^0x[0-7][0-9a-fA-F]$ ]] && ((address >= 0x03 && address <= 0x77)) ||
  { warn "BME280_I2C_ADDRESS=$address is not a 7-bit address (0x03..0x77)"; exit 2; }
printf -v device '%d-%04x' "$bus" "$address" # as Linux names it: /sys/bus/i2c/devices/1-0076
labels="sensor=\"$chip\",device=\"$device\""

# Stop starting reads once 80% of the collector's timeout (EDGE_SCRIPT_TIMEOUT) has gone, so a hung bus ends
# in a clean failure rather than a kill; `timeout --foreground` keeps the command in our process group.
budget_us=$(awk -v t="${EDGE_SCRIPT_TIMEOUT:-10}" 'BEGIN { t += 0; if (t <= 0) t = 10; printf "%d", t * 800000 }')
deadline_us=$((${EPOCHREALTIME//[!0-9]/} + budget_us))
i2c() {
  local left_us=$((deadline_us - ${EPOCHREALTIME//[!0-9]/})) left
  ((left_us > 0)) || { warn "$1 skipped: the time budget of EDGE_SCRIPT_TIMEOUT=${EDGE_SCRIPT_TIMEOUT:-10}s is used up"; return 1; }
  printf -v left '%d.%06d' $((left_us / 1000000)) $((left_us % 1000000))
  timeout --foreground --kill-after=1 "$left" "$@"
}

# block REG COUNT: COUNT bytes from REG on, in the array `bytes` (one I2C read; the chip auto-increments).
block() {
  local out
  out=$(i2c i2ctransfer -f -y "$bus" "w1@$address" "$1" "r$2") ||
    { warn "no answer from $device reading $2 bytes at register $1"; return 1; }
  read -ra bytes <<<"$out"
  ((${#bytes[@]} == $2)) || { warn "$device answered '$out' reading $2 bytes at register $1"; return 1; }
}
put() { i2c i2cset -f -y "$bus" "$address" "$1" "$2" || { warn "no answer from $device writing $2 to register $1"; return 1; }; }
u16() { echo $((bytes[$1] | bytes[$1 + 1] << 8)); } # calibration words: least significant byte first
s16() { local v=$((bytes[$1] | bytes[$1 + 1] << 8)); echo $((v >= 0x8000 ? v - 0x10000 : v)); }
s8() { echo $((bytes[$1] >= 0x80 ? bytes[$1] - 0x100 : bytes[$1])); }

echo "# HELP temperature_celsius Temperature in degrees Celsius (°C)."
echo "# TYPE temperature_celsius gauge"
echo "# HELP pressure_pascals Air pressure in pascals (Pa; 100 Pa = 1 hPa)."
echo "# TYPE pressure_pascals gauge"
echo "# HELP humidity_ratio Relative humidity as a ratio from 0 to 1 (%RH / 100)."
echo "# TYPE humidity_ratio gauge"

block 0xd0 1 || exit 1
((bytes[0] == 0x60)) || {
  warn "chip id at register 0xD0 of $device is ${bytes[0]}, not 0x60: not a BME280 (0x58 is a BMP280, 0x61 a BME680)"
  exit 1
}
block 0x88 26 || exit 1
T1=$(u16 0) T2=$(s16 2) T3=$(s16 4)
P1=$(u16 6) P2=$(s16 8) P3=$(s16 10) P4=$(s16 12) P5=$(s16 14) P6=$(s16 16) P7=$(s16 18) P8=$(s16 20) P9=$(s16 22)
H1=$((bytes[25]))
block 0xe1 7 || exit 1
H2=$(s16 0) H3=$((bytes[2])) H6=$(s8 6)
H4=$((bytes[3] << 4 | (bytes[4] & 0x0f))) H5=$((bytes[5] << 4 | bytes[4] >> 4)) # 12-bit, signed
((H4 >= 0x800)) && H4=$((H4 - 0x1000))
((H5 >= 0x800)) && H5=$((H5 - 0x1000))

# Humidity oversampling x1 (ctrl_hum, applied by the next ctrl_meas write), then temperature x1, pressure x1,
# forced mode: one measurement, after which the chip goes back to sleep.
put 0xf2 0x01 && put 0xf4 0x25 || exit 1
# Datasheet 9.1: at most 9.3 ms with these settings; status bit 3 (measuring) says when it is done.
for ((try = 0; ; try++)); do
  block 0xf3 1 || exit 1
  ((bytes[0] & 0x08)) || break
  ((try < 20)) || { warn "measurement on $device did not finish within 100 ms (status 0xF3 still measuring)"; exit 1; }
  sleep 0.005
done
block 0xf7 8 || exit 1
adc_P=$((bytes[0] << 12 | bytes[1] << 4 | bytes[2] >> 4))
adc_T=$((bytes[3] << 12 | bytes[4] << 4 | bytes[5] >> 4))
adc_H=$((bytes[6] << 8 | bytes[7]))
((adc_T != 0x80000)) || { warn "$device returned no temperature (0x80000: measurement skipped)"; exit 1; }

# The datasheet's compensation (4.2.3) in bash's 64-bit integers: >> is arithmetic, / truncates, as in its C.
var1=$(((((adc_T >> 3) - (T1 << 1)) * T2) >> 11))
var2=$(((((((adc_T >> 4) - T1) * ((adc_T >> 4) - T1)) >> 12) * T3) >> 14))
t_fine=$((var1 + var2))
T=$(((t_fine * 5 + 128) >> 8)) # 0.01 degC
printf 'temperature_celsius{%s}=%s\n' "$labels" "$(awk -v t="$T" 'BEGIN { printf "%.2f", t / 100 }')"

failed=0
var1=$((t_fine - 128000))
var2=$((var1 * var1 * P6))
var2=$((var2 + ((var1 * P5) << 17)))
var2=$((var2 + (P4 << 35)))
var1=$((((var1 * var1 * P3) >> 8) + ((var1 * P2) << 12)))
var1=$(((((1 << 47) + var1) * P1) >> 33))
if ((adc_P == 0x80000)); then
  warn "$device returned no pressure (0x80000: measurement skipped)"; failed=1
elif ((var1 == 0)); then
  warn "pressure of $device cannot be compensated (dig_P1 is 0: calibration data lost?)"; failed=1
else
  p=$((1048576 - adc_P))
  p=$(((((p << 31) - var2) * 3125) / var1))
  var1=$(((P9 * (p >> 13) * (p >> 13)) >> 25))
  var2=$(((P8 * p) >> 19))
  p=$((((p + var1 + var2) >> 8) + (P7 << 4))) # Pa in Q24.8
  printf 'pressure_pascals{%s}=%s\n' "$labels" "$(awk -v p="$p" 'BEGIN { printf "%.4f", p / 256 }')"
fi

if ((adc_H == 0x8000)); then
  warn "$device returned no humidity (0x8000: measurement skipped)"; failed=1
else
  v=$((t_fine - 76800))
  a=$(((((adc_H << 14) - (H4 << 20) - (H5 * v)) + 16384) >> 15))
  b=$((((((((v * H6) >> 10) * (((v * H3) >> 11) + 32768)) >> 10) + 2097152) * H2 + 8192) >> 14))
  v=$((a * b))
  v=$((v - (((((v >> 15) * (v >> 15)) >> 7) * H1) >> 4)))
  ((v < 0)) && v=0
  ((v > 419430400)) && v=419430400
  H=$((v >> 12)) # %RH in Q22.10
  printf 'humidity_ratio{%s}=%s\n' "$labels" "$(awk -v h="$H" 'BEGIN { printf "%.6f", h / 1024 / 100 }')"
fi
exit "$failed"
