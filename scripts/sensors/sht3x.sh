#!/bin/bash
# sht3x: Sensirion SHT30/SHT31/SHT35 temperature and humidity over I2C with i2c-tools: one single-shot
# measurement per run (high repeatability, no clock stretching), both CRC-8 bytes checked (SHT3x-DIS 4.12);
# a CRC mismatch is a failed read, never a value. Wiring, metrics and failures: docs/sensors.md.
#   SHT3X_I2C_BUS      I2C bus number (default 1)
#   SHT3X_I2C_ADDRESS  7-bit address (default 0x44; 0x45 when ADDR is tied high)
# Try it without the hardware:
#   edge-metrics simulate --model scripts/models/sht3x.yaml -- bash scripts/sensors/sht3x.sh
set -u
export LC_ALL=C # numbers with a decimal point, whatever the node's locale

chip=sht3x
bus=${SHT3X_I2C_BUS:-1}
address=${SHT3X_I2C_ADDRESS:-0x44}

warn() { echo "$chip: $*" >&2; }
[[ $bus =~ ^[0-9]+$ ]] || { warn "SHT3X_I2C_BUS=$bus is not a bus number"; exit 2; }
[[ $address =~ ^0x[0-7][0-9a-fA-F]$ ]] && ((address >= 0x03 && address <= 0x77)) ||
  { warn "SHT3X_I2C_ADDRESS=$address is not a 7-bit address (0x03..0x77)"; exit 2; }
printf -v device '%d-%04x' "$bus" "$address" # as Linux names it: /sys/bus/i2c/devices/1-0044
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

# crc8 BYTE BYTE: the datasheet's CRC-8 (polynomial 0x31, initial 0xFF) of a 16-bit word, MSB first.
crc8() {
  local crc=0xff byte bit
  for byte in "$@"; do
    ((crc ^= byte))
    for ((bit = 0; bit < 8; bit++)); do
      ((crc = crc & 0x80 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff))
    done
  done
  echo "$crc"
}

echo "# HELP temperature_celsius Temperature in degrees Celsius (°C)."
echo "# TYPE temperature_celsius gauge"
echo "# HELP humidity_ratio Relative humidity as a ratio from 0 to 1 (%RH / 100)."
echo "# TYPE humidity_ratio gauge"

# Single shot, high repeatability, clock stretching disabled (0x2400): the command, then a read once done.
i2c i2ctransfer -f -y "$bus" "w2@$address" 0x24 0x00 || { warn "no answer from $device to the measure command 0x2400"; exit 1; }
# Datasheet table 4: at most 15 ms. Until then the chip does not acknowledge a read: poll, with a bound.
sleep 0.015
for ((try = 0; ; try++)); do
  if out=$(i2c i2ctransfer -f -y "$bus" "r6@$address" 2>/dev/null); then break; fi
  ((try < 10)) || { warn "no result from $device within 65 ms of the measure command (read not acknowledged)"; exit 1; }
  sleep 0.005
done
read -ra bytes <<<"$out"
((${#bytes[@]} == 6)) || { warn "$device answered '$out' reading 6 bytes"; exit 1; }

# Each word is followed by its CRC: T (bytes 0, 1, CRC 2), then RH (3, 4, CRC 5).
failed=0
for word in temperature humidity; do
  at=0
  [[ $word == humidity ]] && at=3
  expected=$(crc8 "${bytes[at]}" "${bytes[at + 1]}")
  if ((expected != bytes[at + 2])); then
    printf -v expected '0x%02x' "$expected"
    warn "CRC mismatch in the $word from $device: received ${bytes[at + 2]}, computed $expected from ${bytes[at]} ${bytes[at + 1]}"
    failed=1
    continue
  fi
  raw=$((bytes[at] << 8 | bytes[at + 1]))
  # T = -45 + 175 * S_T / (2^16 - 1) degC; RH = 100 * S_RH / (2^16 - 1) %RH, here as a ratio (datasheet 4.13)
  if [[ $word == temperature ]]; then
    awk -v s="$raw" -v l="$labels" 'BEGIN { printf "temperature_celsius{%s}=%.3f\n", l, -45 + 175 * s / 65535 }'
  else
    awk -v s="$raw" -v l="$labels" 'BEGIN { printf "humidity_ratio{%s}=%.5f\n", l, s / 65535 }'
  fi
done
exit "$failed"
