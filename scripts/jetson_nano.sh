#!/bin/bash
# jetson_nano: SoC temperatures from the kernel's thermal zones (sysfs), in degC.
# Each zone is named by its `type` file: GPU-therm -> gpu_temperature, CPU-therm -> cpu_temperature,
# PMIC-Die -> pmic_die_temperature (lower case, "-therm"/"-thermal" dropped, other characters -> "_").
# Two zones of the same type: the second gets its zone number appended (cpu_temperature_3).
# EDGE_SYSFS_ROOT replaces /sys (tests use a fake tree). A zone that cannot be read is left out with
# a message on stderr, the others still print, exit code 1.
set -u
export LC_ALL=C

root=${EDGE_SYSFS_ROOT:-/sys}
failed=0
found=0
declare -A used=()

warn() { echo "jetson_nano: $*" >&2; }

# name_of TYPE ZONE: the key for a zone type.
name_of() {
  local name=${1,,}
  name=${name%-therm}; name=${name%_therm}; name=${name%-thermal}; name=${name%_thermal}
  name=${name//[^a-z0-9]/_}
  while [[ $name == *__* ]]; do name=${name//__/_}; done
  name=${name#_}; name=${name%_}
  [[ -z $name || $name == [0-9]* ]] && name="zone$2"
  echo "${name}_temperature"
}

# Zones in numeric order (thermal_zone10 after thermal_zone9), so duplicate names are stable.
zones=()
for dir in "$root"/class/thermal/thermal_zone*; do
  number=${dir##*thermal_zone}
  [[ -d $dir && $number =~ ^[0-9]+$ ]] && zones[number]=$dir
done

for number in "${!zones[@]}"; do
  dir=${zones[number]}
  found=1
  type=""
  read -r type <"$dir/type" 2>/dev/null
  if [[ -z $type ]]; then
    warn "thermal_zone$number: cannot read its type"
    failed=1
    continue
  fi
  key=$(name_of "$type" "$number")
  [[ -n ${used[$key]:-} ]] && key="${key}_$number"
  used[$key]=1
  milli=""
  read -r milli <"$dir/temp" 2>/dev/null # some zones fail with EINVAL/ENODATA while their sensor is off
  if [[ ! $milli =~ ^-?[0-9]+$ ]]; then
    warn "thermal_zone$number ($type): cannot read temp${milli:+ (got '$milli')}"
    failed=1
    continue
  fi
  # millidegrees -> degrees, in integer arithmetic: -5500 -> -5.500
  sign=${milli%%[0-9]*}
  abs=$((10#${milli#-}))
  printf '%s=%s%d.%03d\n' "$key" "$sign" $((abs / 1000)) $((abs % 1000))
done

if ((!found)); then
  warn "no thermal zones under $root/class/thermal"
  failed=1
fi
exit "$failed"
