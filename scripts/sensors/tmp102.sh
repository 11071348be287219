#!/bin/bash
# tmp102: TI TMP102 temperature over I2C with i2c-tools, in its 12-bit format (-55 to 128 degC) or, with
# TMP102_EXTENDED=1, the 13-bit extended mode (EM, to 150 degC); 0.0625 degC per bit either way (SBOS397
# 7.5.4). Bit 0 of the temperature register says which format a reading is in: after a change of mode the
# script waits for a conversion in the new one. Wiring, metrics and failures: docs/sensors.md.
#   TMP102_I2C_BUS      I2C bus number (default 1)
#   TMP102_I2C_ADDRESS  7-bit address (default 0x48; 0x49, 0x4A, 0x4B with ADD0 on V+, SDA, SCL)
#   TMP102_EXTENDED     1: extended 13-bit mode; 0 (default): the 12-bit format
# Try it without the hardware:
#   edge-metrics simulate --model scripts/models/tmp102.yaml -- bash scripts/sensors/tmp102.sh
set -u
export LC_ALL=C # numbers with a decimal point, whatever the node's locale

chip=tmp102
bus=${TMP102_I2C_BUS:-1}
address=${TMP102_I2C_ADDRESS:-0x48}
extended=${TMP102_EXTENDED:-0}

warn() { echo "$chip: $*" >&2; }
[[ $bus =~ ^[0-9]+$ ]] || { warn "TMP102_I2C_BUS=$bus is not a bus number"; exit 2; }
[[ $address =~ ^0x[0-7][0-9a-fA-F]$ ]] && ((address >= 0x03 && address <= 0x77)) ||
  { warn "TMP102_I2C_ADDRESS=$address is not a 7-bit address (0x03..0x77)"; exit 2; }
[[ $extended == [01] ]] || { warn "TMP102_EXTENDED=$extended is not 0 or 1"; exit 2; }
printf -v device '%d-%04x' "$bus" "$address" # as Linux names it: /sys/bus/i2c/devices/1-0048

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

# The registers are 16 bits, most significant byte first on the wire: i2ctransfer shows them in that order
# (an SMBus word read, i2cget ... w, would print them swapped).
get() {
  local out bytes
  out=$(i2c i2ctransfer -f -y "$bus" "w1@$address" "$1" r2) || { warn "no answer from $device reading register $1"; return 1; }
  read -ra bytes <<<"$out"
  ((${#bytes[@]} == 2)) || { warn "$device answered '$out' reading register $1"; return 1; }
  echo $((bytes[0] << 8 | bytes[1]))
}
put() {
  i2c i2ctransfer -f -y "$bus" "w3@$address" "$1" $(($2 >> 8)) $(($2 & 0xff)) ||
    { warn "no answer from $device writing $(printf '0x%04x' "$2") to register $1"; return 1; }
}

echo "# HELP temperature_celsius Temperature in degrees Celsius (°C)."
echo "# TYPE temperature_celsius gauge"

config=$(get 0x01) || exit 1
if (((config >> 4 & 1) != extended)); then
  put 0x01 $(((config & ~0x10) | extended << 4)) || exit 1
fi
# The chip converts 4 times a second (CR = 10, its default): the new format shows within one period.
for ((try = 0; ; try++)); do
  raw=$(get 0x00) || exit 1
  (((raw & 1) == extended)) && break
  ((try < 30)) || { warn "the temperature register of $device is not in the $((12 + extended))-bit format 600 ms after EM was written"; exit 1; }
  sleep 0.02
done
if ((extended)); then
  code=$((raw >> 3)) && ((code >= 0x1000)) && code=$((code - 0x2000)) # 13-bit two's complement
else
  code=$((raw >> 4)) && ((code >= 0x800)) && code=$((code - 0x1000)) # 12-bit two's complement
fi
awk -v c="$code" -v l="sensor=\"$chip\",device=\"$device\"" 'BEGIN { printf "temperature_celsius{%s}=%.4f\n", l, c * 0.0625 }'
