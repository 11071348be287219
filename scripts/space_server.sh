#!/bin/bash
# space_server: sensors of the seed's example node (bupt-a) on I2C bus 0.
#   0x40  HDC1080-style temperature and humidity sensor
#   0x41  INA219-style power monitor, 0.1 ohm shunt, calibration 4096 (100 uA/bit current, 2 mW/bit power)
#   0x48  ADS1115-style ADC, single-ended AIN0..AIN3, PGA +-4.096 V (125 uV/bit)
# Output (one key=value per line, see docs/simulator.md):
#   temperature (degC), humidity (%RH), bus_voltage_volts, shunt_voltage_volts, current_amperes,
#   power_watts, adc_voltage_volts{channel="0".."3"}
# A reading that fails is left out with a message on stderr, the others still print, exit code 1.
# Try it without the hardware:
#   edge-metrics simulate --model scripts/models/space_server.yaml -- bash scripts/space_server.sh
set -u
export LC_ALL=C # numbers with a decimal point, whatever the node's locale

bus=${SPACE_SERVER_I2C_BUS:-0}
failed=0

warn() { echo "space_server: $*" >&2; }

# Time budget: stop starting reads once 80% of the collector's timeout (EDGE_SCRIPT_TIMEOUT, seconds)
# has gone, so a hung bus still ends in a clean failure rather than a kill. `timeout --foreground`
# keeps i2cget in our process group: if the collector kills the group, nothing survives it.
budget_us=$(awk -v t="${EDGE_SCRIPT_TIMEOUT:-10}" 'BEGIN { t += 0; if (t <= 0) t = 10; printf "%d", t * 800000 }')
deadline_us=$((${EPOCHREALTIME//[!0-9]/} + budget_us))

# i2c COMMAND ARGS...: run an i2c-tools command within what is left of the budget.
i2c() {
  local left_us=$((deadline_us - ${EPOCHREALTIME//[!0-9]/})) left
  if ((left_us <= 0)); then
    warn "$1 $5 $6 skipped: time budget of EDGE_SCRIPT_TIMEOUT=${EDGE_SCRIPT_TIMEOUT:-10}s used up"
    return 1
  fi
  printf -v left '%d.%06d' $((left_us / 1000000)) $((left_us % 1000000))
  timeout --foreground --kill-after=1 "$left" "$@"
}

# word ADDR REG: the 16-bit register as the datasheet numbers it. These chips send the most
# significant byte first; an SMBus word read takes the first byte as the least significant, so the
# word i2cget prints is byte-swapped and is swapped back here.
word() {
  local out
  if ! out=$(i2c i2cget -f -y "$bus" "$1" "$2" w); then
    warn "cannot read register $2 of device $1 on bus $bus"
    return 1
  fi
  if [[ ! $out =~ ^0x[0-9a-fA-F]{4}$ ]]; then
    warn "unexpected answer from register $2 of device $1: '$out'"
    return 1
  fi
  echo $((((out & 0xff) << 8) | (out >> 8)))
}

# put_word ADDR REG VALUE: write a 16-bit register, swapped for the same reason as in word().
put_word() {
  local swapped
  swapped=$(printf '0x%04x' $(((($3 & 0xff) << 8) | (($3 >> 8) & 0xff))))
  if ! i2c i2cset -f -y "$bus" "$1" "$2" "$swapped" w; then
    warn "cannot write register $2 of device $1 on bus $bus"
    return 1
  fi
}

signed16() { echo $(($1 >= 0x8000 ? $1 - 0x10000 : $1)); }

# emit KEY FORMAT AWK_EXPRESSION RAW: print KEY=<expression of r>, where r is RAW.
emit() { awk -v key="$1" -v r="$4" "BEGIN { printf \"%s=$2\\n\", key, $3 }"; }

# --- HDC1080 at 0x40: temperature = raw/2^16*165 - 40 degC, humidity = raw/2^16*100 %RH -------------
if raw=$(word 0x40 0x00); then
  emit temperature %.2f 'r / 65536 * 165 - 40' "$raw"
else failed=1; fi
if raw=$(word 0x40 0x01); then
  emit humidity %.2f 'r / 65536 * 100' "$raw"
else failed=1; fi

# --- INA219 at 0x41 -----------------------------------------------------------------------------------
# Calibration = trunc(0.04096 / (current_LSB * R_shunt)) = 0.04096 / (100e-6 A * 0.1 ohm) = 4096.
# The chip forgets it at power loss and reads current and power as 0 until it is written.
calibrated=1
put_word 0x41 0x05 4096 || { calibrated=0; failed=1; }
overflow=0
if raw=$(word 0x41 0x02); then
  # bits 15..3: bus voltage, 4 mV/bit; bit 1 CNVR (conversion ready); bit 0 OVF (math overflow)
  overflow=$((raw & 1))
  emit bus_voltage_volts %.3f 'int(r / 8) * 0.004' "$raw"
else failed=1; fi
if raw=$(word 0x41 0x01); then
  emit shunt_voltage_volts %.5f 'r * 0.00001' "$(signed16 "$raw")" # signed, 10 uV/bit
else failed=1; fi
if ((overflow)); then
  # Current and power are computed from an out-of-range value: better no reading than a wrong one.
  warn "INA219 math overflow (OVF set): current and power left out"
  failed=1
elif ((calibrated)); then
  if raw=$(word 0x41 0x04); then
    emit current_amperes %.4f 'r * 0.0001' "$(signed16 "$raw")" # signed, current_LSB 100 uA
  else failed=1; fi
  if raw=$(word 0x41 0x03); then
    emit power_watts %.3f 'r * 0.002' "$raw" # unsigned, power_LSB = 20 * current_LSB = 2 mW
  else failed=1; fi
fi

# --- ADS1115 at 0x48: one single-shot conversion per channel ------------------------------------------
# Config: OS=1 (start), MUX=1xx (AINx against GND), PGA=001 (+-4.096 V), MODE=1 (single shot),
# DR=100 (128 SPS, 7.8 ms per conversion), comparator off: 0xC383 | channel << 12.
for channel in 0 1 2 3; do
  if ! put_word 0x48 0x01 $((0xC383 | channel << 12)); then
    failed=1
    continue
  fi
  ready=0
  for _ in 1 2 3 4 5; do
    sleep 0.002
    config=$(word 0x48 0x01) || break
    if ((config & 0x8000)); then ready=1; break; fi # OS reads 1 once the conversion is done
  done
  if ((!ready)); then
    warn "ADS1115 channel $channel: no conversion result"
    failed=1
    continue
  fi
  if raw=$(word 0x48 0x00); then
    emit "adc_voltage_volts{channel=\"$channel\"}" %.6f 'r * 4.096 / 32768' "$(signed16 "$raw")"
  else failed=1; fi
done

exit "$failed"
