#!/bin/bash
# ina219: TI INA219 bus voltage, shunt voltage, current and power over I2C with i2c-tools. Each run writes the
# configuration and the calibration register (the chip forgets them at power loss) from the shunt resistance
# and the largest current expected (SBOS448 8.5.1), waits for a conversion with it, and reads the four
# registers; a math overflow (OVF) leaves current and power out. Wiring, metrics and failures: docs/sensors.md.
#   INA219_I2C_BUS                  I2C bus number (default 1)
#   INA219_I2C_ADDRESS              7-bit address (default 0x40; 0x40..0x4F by A0 and A1)
#   INA219_SHUNT_OHMS               shunt resistance in ohms (default 0.1, as on most breakout boards)
#   INA219_MAX_CURRENT_AMPERES      largest current expected (default 3.2: what 320 mV across 0.1 ohm gives)
#   INA219_BUS_RANGE_VOLTS          bus voltage range, 16 or 32 (default 32)
#   INA219_SHUNT_RANGE_MILLIVOLTS   shunt voltage range (PGA), 40, 80, 160 or 320 (default 320)
# Try it without the hardware:
#   edge-metrics simulate --model scripts/models/ina219.yaml -- bash scripts/sensors/ina219.sh
set -u
export LC_ALL=C # numbers with a decimal point, whatever the node's locale

chip=ina219
bus=${INA219_I2C_BUS:-1}
address=${INA219_I2C_ADDRESS:-0x40}
shunt_ohms=${INA219_SHUNT_OHMS:-0.1}
max_current=${INA219_MAX_CURRENT_AMPERES:-3.2}
bus_range=${INA219_BUS_RANGE_VOLTS:-32}
shunt_range=${INA219_SHUNT_RANGE_MILLIVOLTS:-320}

warn() { echo "$chip: $*" >&2; }
[[ $bus =~ ^[0-9]+$ ]] || { warn "INA219_I2C_BUS=$bus is not a bus number"; exit 2; }
[[ $address =~ ^0x[0-7][0-9a-fA-F]$ ]] && ((address >= 0x03 && address <= 0x77)) ||
  { warn "INA219_I2C_ADDRESS=$address is not a 7-bit address (0x03..0x77)"; exit 2; }
number='^([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$'
[[ $shunt_ohms =~ $number ]] || { warn "INA219_SHUNT_OHMS=$shunt_ohms is not a resistance in ohms"; exit 2; }
[[ $max_current =~ $number ]] || { warn "INA219_MAX_CURRENT_AMPERES=$max_current is not a current in amperes"; exit 2; }
case $bus_range in 16) brng=0 ;; 32) brng=1 ;; *) warn "INA219_BUS_RANGE_VOLTS=$bus_range is not 16 or 32"; exit 2 ;; esac
case $shunt_range in 40) pga=0 ;; 80) pga=1 ;; 160) pga=2 ;; 320) pga=3 ;;
  *) warn "INA219_SHUNT_RANGE_MILLIVOLTS=$shunt_range is not 40, 80, 160 or 320"; exit 2 ;; esac
# Calibration = trunc(0.04096 / (Current_LSB * R_shunt)) with Current_LSB = max current / 2^15 (equation 1);
# bit 0 of the register does not exist. The current LSB is then taken back from the calibration written, so
# that the readings are exact whatever the truncation dropped.
read -r cal current_lsb < <(awk -v r="$shunt_ohms" -v i="$max_current" 'BEGIN {
  if (r <= 0 || i <= 0) { print 0, 0; exit }
  cal = int(0.04096 / (i / 32768 * r)); cal -= cal % 2
  printf "%d %.12g\n", cal, (cal > 0 ? 0.04096 / (cal * r) : 0) }')
((cal >= 2 && cal <= 0xfffe)) || {
  warn "INA219_SHUNT_OHMS=$shunt_ohms with INA219_MAX_CURRENT_AMPERES=$max_current gives calibration $cal, outside 2..65534"
  exit 2
}
printf -v device '%d-%04x' "$bus" "$address" # as Linux names it: /sys/bus/i2c/devices/1-0040
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
s16() { echo $(($1 >= 0x8000 ? $1 - 0x10000 : $1)); }
emit() { awk -v k="$1" -v l="$labels" -v v="$2" -v s="$3" 'BEGIN { printf "%s{%s}=%.9g\n", k, l, v * s }'; }

echo "# HELP bus_voltage_volts Voltage between the bus (IN-) and ground in volts (V)."
echo "# TYPE bus_voltage_volts gauge"
echo "# HELP shunt_voltage_volts Voltage across the shunt resistor in volts (V)."
echo "# TYPE shunt_voltage_volts gauge"
echo "# HELP current_amperes Current through the shunt resistor in amperes (A)."
echo "# TYPE current_amperes gauge"
echo "# HELP power_watts Power delivered to the load in watts (W)."
echo "# TYPE power_watts gauge"

# Configuration: bus and shunt ranges, 12-bit conversions, shunt and bus continuous (mode 111).
put 0x00 $((brng << 13 | pga << 11 | 0x3 << 7 | 0x3 << 3 | 0x7)) && put 0x05 "$cal" || exit 1
# CNVR (bus voltage register bit 1): a conversion with the new calibration has finished (about 1 ms).
for ((try = 0; ; try++)); do
  raw_bus=$(get 0x02) || exit 1
  ((raw_bus & 0x02)) && break
  ((try < 20)) || { warn "no conversion from $device within 100 ms (CNVR of register 0x02 never set)"; exit 1; }
  sleep 0.005
done
raw_shunt=$(get 0x01) || exit 1
emit bus_voltage_volts $((raw_bus >> 3)) 0.004       # BD[15:3], 4 mV per bit
emit shunt_voltage_volts "$(s16 "$raw_shunt")" 0.00001 # 10 uV per bit
if ((raw_bus & 0x01)); then
  warn "math overflow (OVF) on $device: current and power left out; raise INA219_MAX_CURRENT_AMPERES"
  exit 1
fi
raw_current=$(get 0x04) || exit 1
raw_power=$(get 0x03) || exit 1 # read last: reading power clears CNVR
emit current_amperes "$(s16 "$raw_current")" "$current_lsb"
awk -v l="$labels" -v v="$raw_power" -v s="$current_lsb" 'BEGIN { printf "power_watts{%s}=%.9g\n", l, v * 20 * s }'
