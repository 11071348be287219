#!/bin/bash
# iio_hwmon: sensors bound to a kernel driver, read from sysfs: every IIO device's channels
# (/sys/bus/iio/devices/iio:deviceN/in_<channel>_input, or _raw with _offset and _scale, as the kernel's
# sysfs-bus-iio ABI defines them) and every hwmon device's temp*, in*, curr*, power* and humidity* inputs
# (Documentation/hwmon/sysfs-interface), converted to base units. node_exporter reads hwmon itself but not IIO.
# Wiring, metrics and failures: docs/sensors.md.
#   EDGE_SYSFS_ROOT  where sysfs is (default /sys; a copy of a board's tree for tests)
# Try it on this machine:  bash scripts/sensors/iio_hwmon.sh
set -u
export LC_ALL=C # numbers with a decimal point, whatever the node's locale
shopt -s nullglob

root=${EDGE_SYSFS_ROOT:-/sys}
failed=0
found=0
warn() { echo "iio_hwmon: $*" >&2; }

echo "# HELP temperature_celsius Temperature in degrees Celsius (°C)."
echo "# TYPE temperature_celsius gauge"
echo "# HELP voltage_volts Voltage measured by a kernel sensor driver in volts (V)."
echo "# TYPE voltage_volts gauge"
echo "# HELP current_amperes Current through the shunt resistor in amperes (A)."
echo "# TYPE current_amperes gauge"
echo "# HELP power_watts Power delivered to the load in watts (W)."
echo "# TYPE power_watts gauge"
echo "# HELP pressure_pascals Air pressure in pascals (Pa; 100 Pa = 1 hPa)."
echo "# TYPE pressure_pascals gauge"
echo "# HELP humidity_ratio Relative humidity as a ratio from 0 to 1 (%RH / 100)."
echo "# TYPE humidity_ratio gauge"
echo "# HELP illuminance_lux Illuminance in lux (lx)."
echo "# TYPE illuminance_lux gauge"

# value FILE: its number in `number`; a file the driver cannot read (the chip did not answer) is a failure.
value() {
  local text
  if ! text=$(cat -- "$1" 2>&1); then
    warn "cannot read $1: ${text##*: }"; failed=1; return 1
  fi
  text=${text//[[:space:]]/}
  [[ $text =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] || { warn "$1 holds '$text', not a number"; failed=1; return 1; }
  number=$text
}
label() { local v=${1//\\/\\\\}; v=${v//\"/\\\"}; printf '%s' "${v//$'\n'/\\n}"; }
# emit KEY SENSOR DEVICE VALUE FACTOR
emit() {
  awk -v k="$1" -v s="$(label "$2")" -v d="$(label "$3")" -v v="$4" -v f="$5" \
    'BEGIN { printf "%s{sensor=\"%s\",device=\"%s\"}=%.9g\n", k, s, d, v * f }'
  found=1
}

# IIO: the channel type decides the key and the factor from the ABI's unit to the base unit.
iio_key() {
  case $1 in
    temp*) echo "temperature_celsius 0.001" ;;           # millidegrees Celsius
    voltage*) echo "voltage_volts 0.001" ;;              # millivolts
    current*) echo "current_amperes 0.001" ;;            # milliamperes
    power*) echo "power_watts 0.001" ;;                  # milliwatts
    pressure*) echo "pressure_pascals 1000" ;;           # kilopascals
    humidityrelative*) echo "humidity_ratio 0.00001" ;;  # milli percent
    illuminance*) echo "illuminance_lux 1" ;;
    *) return 1 ;;
  esac
}
for dir in "$root"/bus/iio/devices/iio:device*; do
  [[ -r $dir/name ]] && sensor=$(<"$dir/name") || sensor=${dir##*/}
  for file in "$dir"/in_*_input "$dir"/in_*_raw; do
    base=${file##*/in_}
    channel=${base%_*}
    kind=${channel%%[0-9_]*}
    read -r key factor < <(iio_key "$kind") || continue
    [[ $file == *_raw && -e $dir/in_${channel}_input ]] && continue # the driver's own processed value wins
    value "$file" || continue
    reading=$number
    if [[ $file == *_raw ]]; then
      offset=0 scale=1
      for attribute in offset scale; do # per channel, else shared by the channel type
        for candidate in "$dir/in_${channel}_$attribute" "$dir/in_${kind}_$attribute"; do
          [[ -e $candidate ]] || continue
          value "$candidate" || continue 3
          printf -v "$attribute" '%s' "$number"
          break
        done
      done
      reading=$(awk -v r="$reading" -v o="$offset" -v s="$scale" 'BEGIN { printf "%.12g", (r + o) * s }')
    fi
    emit "$key" "$sensor" "${dir##*/}/$channel" "$reading" "$factor"
  done
done

# hwmon: one unit per attribute family (millidegrees, millivolts, milliamperes, microwatts, milli percent).
for dir in "$root"/class/hwmon/hwmon*; do
  [[ -r $dir/name ]] && sensor=$(<"$dir/name") || sensor=${dir##*/}
  for file in "$dir"/temp*_input "$dir"/in*_input "$dir"/curr*_input "$dir"/power*_input "$dir"/humidity*_input; do
    channel=${file##*/}
    channel=${channel%_input}
    case $channel in
      temp*) key=temperature_celsius factor=0.001 ;;
      in*) key=voltage_volts factor=0.001 ;;
      curr*) key=current_amperes factor=0.001 ;;
      power*) key=power_watts factor=0.000001 ;;
      humidity*) key=humidity_ratio factor=0.00001 ;;
    esac
    value "$file" && emit "$key" "$sensor" "${dir##*/}/$channel" "$number" "$factor"
  done
done

((found || failed)) || { warn "no IIO or hwmon sensor under $root (bus/iio/devices, class/hwmon)"; exit 1; }
exit "$failed"
