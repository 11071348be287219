#!/bin/bash
# ads1115: TI ADS1115 16-bit ADC over I2C with i2c-tools: a single-shot conversion of each single-ended input
# (AINx against GND) with the configured gain, the conversion-ready bit (OS) polled with a bound (SBAS444
# 9.3.6). Wiring, metrics and failures: docs/sensors.md.
#   ADS1115_I2C_BUS              I2C bus number (default 1)
#   ADS1115_I2C_ADDRESS          7-bit address (default 0x48; 0x49, 0x4A, 0x4B with ADDR on VDD, SDA, SCL)
#   ADS1115_FULL_SCALE_VOLTS     PGA full scale: 6.144, 4.096 (default), 2.048, 1.024, 0.512 or 0.256
#   ADS1115_SAMPLES_PER_SECOND   data rate: 8, 16, 32, 64, 128 (default), 250, 475 or 860
#   ADS1115_CHANNELS             the channel label of AIN0..AIN3, comma-separated (default ain0,ain1,ain2,ain3);
#                                an empty name or - leaves that input out
# Try it without the hardware:
#   edge-metrics simulate --model scripts/models/ads1115.yaml -- bash scripts/sensors/ads1115.sh
set -u
export LC_ALL=C # numbers with a decimal point, whatever the node's locale

chip=ads1115
bus=${ADS1115_I2C_BUS:-1}
address=${ADS1115_I2C_ADDRESS:-0x48}
full_scale=${ADS1115_FULL_SCALE_VOLTS:-4.096}
rate=${ADS1115_SAMPLES_PER_SECOND:-128}
IFS=, read -ra channels <<<"${ADS1115_CHANNELS:-ain0,ain1,ain2,ain3},,,,"

warn() { echo "$chip: $*" >&2; }
[[ $bus =~ ^[0-9]+$ ]] || { warn "ADS1115_I2C_BUS=$bus is not a bus number"; exit 2; }
[[ $address =~ ^0x[0-7][0-9a-fA-F]$ ]] && ((address >= 0x03 && address <= 0x77)) ||
  { warn "ADS1115_I2C_ADDRESS=$address is not a 7-bit address (0x03..0x77)"; exit 2; }
case $full_scale in 6.144) pga=0 ;; 4.096) pga=1 ;; 2.048) pga=2 ;; 1.024) pga=3 ;; 0.512) pga=4 ;; 0.256) pga=5 ;;
  *) warn "ADS1115_FULL_SCALE_VOLTS=$full_scale is not 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256"; exit 2 ;; esac
case $rate in 8) dr=0 ;; 16) dr=1 ;; 32) dr=2 ;; 64) dr=3 ;; 128) dr=4 ;; 250) dr=5 ;; 475) dr=6 ;; 860) dr=7 ;;
  *) warn "ADS1115_SAMPLES_PER_SECOND=$rate is not 8, 16, 32, 64, 128, 250, 475 or 860"; exit 2 ;; esac
for name in "${channels[@]:0:4}"; do
  [[ -z $name || $name == - || $name =~ ^[A-Za-z0-9_.:-]+$ ]] ||
    { warn "ADS1115_CHANNELS: '$name' is not a channel name (letters, digits, _ . : -)"; exit 2; }
done
printf -v device '%d-%04x' "$bus" "$address" # as Linux names it: /sys/bus/i2c/devices/1-0048
# One conversion lasts 1/rate, and the oscillator may run 10 % slow (datasheet 7.5).
wait_s=$(awk -v r="$rate" 'BEGIN { printf "%.4f", 1.1 / r }')

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

echo "# HELP adc_input_volts Voltage at an ADC input against ground in volts (V)."
echo "# TYPE adc_input_volts gauge"

# convert N: AINn against GND (MUX 1nn), single shot; the signed code of the conversion register.
convert() {
  local n=$1 config try raw
  # OS (start), MUX, PGA, MODE single-shot, DR, comparator disabled (COMP_QUE 11).
  put 0x01 $((1 << 15 | (4 + n) << 12 | pga << 9 | 1 << 8 | dr << 5 | 0x03)) || return 1
  sleep "$wait_s"
  for ((try = 0; ; try++)); do
    config=$(get 0x01) || return 1
    ((config & 0x8000)) && break # OS reads 1: no conversion in progress, the result is in
    ((try < 10)) || { warn "conversion of AIN$n on $device not ready after $wait_s s and 10 polls (OS bit of register 0x01 stays 0)"; return 1; }
    sleep 0.005
  done
  raw=$(get 0x00) || return 1
  echo $((raw >= 0x8000 ? raw - 0x10000 : raw))
}

failed=0
for n in 0 1 2 3; do
  name=${channels[n]}
  [[ -z $name || $name == - ]] && continue
  if code=$(convert "$n"); then
    awk -v c="$code" -v f="$full_scale" -v l="sensor=\"$chip\",device=\"$device\",channel=\"$name\"" \
      'BEGIN { printf "adc_input_volts{%s}=%.12g\n", l, c * f / 32768 }'
  else
    failed=1
  fi
done
exit "$failed"
