#!/usr/bin/env bash
# Build the collector's image for every architecture, with no registry: `make image` runs this.
#
#   tools/build-image.sh                         # linux/amd64, linux/arm64, linux/arm/v7 on a Debian base
#   ARCHES="amd64 arm64" tools/build-image.sh    # a subset (Debian architecture names)
#   BASE=python:3.11-slim-bookworm tools/build-image.sh   # on the usual base, for a user with a registry
#
# This script is the single source of the image. Each image has three layers:
#   1. the base: Debian bookworm's python3.11, bash, coreutils, tzdata and CA certificates, unpacked from
#      Debian's packages by mmdebstrap (variant extract: no package script runs, so no emulation is
#      needed for another architecture) and trimmed; or BASE, pulled from a registry;
#   2. i2c: i2cget and friends and libi2c0, unpacked from the pinned .debs with `dpkg -x` (apt-get install
#      of i2c-tools would bring perl and udev for five small binaries);
#   3. the collector: the wheel installed into /opt/edge-metrics, byte-compiled here, the same for every
#      architecture (pure Python; a 3.11 .pyc is the same on every CPU).
# The Dockerfile assembles them (COPY only: nothing runs inside the target architecture).
#
# Out (git-ignored build/image/): NAME_VERSION_linux-ARCH.oci.tar per architecture, NAME_VERSION.oci.tar
# (the multi-arch index with every architecture), NAME_VERSION_linux-ARCH.spdx.json (the SBOM beside each
# archive). Sizes per layer: `.venv/bin/python -m tests.image.oci build/image/*_linux-*.oci.tar`. Nothing on the host changes:
# podman's storage and configuration live in .cache/image/, and no service is started.
# A second run with the same inputs (hashed into build/image/.inputs) does nothing.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
mkdir -p "$top/.cache/image"
# The physical path: podman records its storage path, and .cache may be a link shared by checkouts.
cache=$(realpath "$top/.cache/image")
out="$top/build/image"
ARCHES=${ARCHES:-amd64 arm64 armhf}
BASE=${BASE:-debian}
PYTHON=${PYTHON:-$top/.venv/bin/python}
# The Debian mirror this machine's apt uses (MIRROR=... to choose another).
MIRROR=${MIRROR:-$( { cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null || true; } \
  | sed -n -E 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/p' \
  | grep -v security | head -1 || true)}
[[ -n "$MIRROR" ]] || { echo "build-image: no Debian mirror in /etc/apt; set MIRROR" >&2; exit 1; }

# The image's name and tag: the `images` entry of deploy/kubernetes/edge/kustomization.yaml, the one
# place, which the rendered DaemonSet carries too (tests/k8s checks both against the package version).
kustomization="$top/deploy/kubernetes/edge/kustomization.yaml"
read -r IMAGE_NAME IMAGE_TAG < <("$PYTHON" -c '
import sys, yaml
entry = next(i for i in yaml.safe_load(open(sys.argv[1]))["images"] if i["name"] == "edge-metrics-collector")
print(entry["newName"], entry["newTag"])' "$kustomization")
name=${IMAGE_NAME##*/}
ref="$IMAGE_NAME:$IMAGE_TAG"

inputs_hash() {
  { printf '%s\n' "$ARCHES" "$BASE"
    git -C "$top" ls-files -z -- Dockerfile tools/build-image.sh deploy/kubernetes/edge/kustomization.yaml \
      deploy/components.versions pyproject.toml README.md src scripts sim \
      | tar --null -T - --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf -
  } | sha256sum | cut -d' ' -f1
}
want=$(inputs_hash)
up_to_date() { [[ -f "$out/.inputs" && "$(cat "$out/.inputs")" == "$want" ]]; }
if up_to_date; then
  echo "build-image: $ref up to date in ${out#"$top"/}" >&2
  exit 0
fi
# One build at a time in the storage: `make test` builds while its tests may call this script (the image
# tests do, to be sure the image is current), and checkouts sharing .cache build into one podman storage.
# flock(1) holds the lock and runs the script again (-o: nothing the build starts inherits the lock).
if [[ -z "${BUILD_IMAGE_LOCKED:-}" ]]; then
  BUILD_IMAGE_LOCKED=1 exec flock -o "$cache/.lock" bash "$0" "$@"
fi
if up_to_date; then
  echo "build-image: $ref up to date in ${out#"$top"/} (built meanwhile)" >&2
  exit 0
fi

for tool in podman runc mmdebstrap; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing: run \`make image\` (it installs it)" >&2; exit 1; }
done

# podman with private storage and configuration. `default_ulimits = []`: some sandboxes refuse
# setrlimit(RLIMIT_NOFILE), which podman's default ulimits set. runc and cgroupfs: crun and the
# systemd cgroup manager need a cgroup layout or a systemd that a build machine may not have.
mkdir -p "$cache/storage" "$cache/run" "$out"
cat >"$cache/containers.conf" <<'CONF'
[containers]
default_ulimits = []
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF="$cache/containers.conf"
pod() { podman --root "$cache/storage" --runroot "$cache/run" "$@"; }

# Private apt state for the .debs of any architecture (the host's apt sources and state stay untouched).
apt_dir="$cache/apt"
apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/none"
  -o "Dir::State=$apt_dir/state" -o "Dir::State::Status=$apt_dir/state/status" -o "Dir::Cache=$apt_dir/cache"
  -o "APT::Architectures=amd64,arm64,armhf" -o "Debug::NoLocking=1")
prepare_apt() {
  mkdir -p "$apt_dir/none" "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$cache/debs"
  chmod 0777 "$cache/debs"
  touch "$apt_dir/state/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR bookworm main" >"$apt_dir/sources.list"
  apt-get "${apt_opts[@]}" update -qq >&2
}
download() {  # PACKAGE[:ARCH][=VERSION]...: into $cache/debs, once
  (cd "$cache/debs" && apt-get "${apt_opts[@]}" download -qq "$@" >&2)
}
deb_of() {  # PACKAGE ARCH: the downloaded .deb
  local found
  found=$(ls "$cache/debs/${1}_"*"_$2.deb" 2>/dev/null | sort -V | tail -1)
  [[ -n "$found" ]] || { echo "build-image: no .deb of $1 for $2" >&2; exit 1; }
  echo "$found"
}
deb_fields() {  # DEB: "package<TAB>version<TAB>architecture", a line of the SBOM's package list
  printf '%s\t%s\t%s\n' "$(dpkg-deb -f "$1" Package)" "$(dpkg-deb -f "$1" Version)" "$(dpkg-deb -f "$1" Architecture)"
}
pinned() {  # PACKAGE: its Debian version in deploy/components.versions (the bookworm pin)
  awk -v p="$1" '$1 == "current" && $2 == "bookworm" && $3 == p { print $4 }' deploy/components.versions
}

triplet() { case $1 in amd64) echo x86_64-linux-gnu ;; arm64) echo aarch64-linux-gnu ;; armhf) echo arm-linux-gnueabihf ;; esac; }
platform() { case $1 in armhf) echo linux/arm/v7 ;; *) echo "linux/$1" ;; esac; }
oci_arch() { case $1 in armhf) echo arm ;; *) echo "$1" ;; esac; }
tag_of() { local p; p=$(platform "$1"); echo "${p//\//-}"; }

# The Debian packages of the base. Their dependencies are resolved by apt; what the image has no use for
# (dpkg and its helpers, which nothing at run time calls) is removed file by file afterwards.
BASE_PACKAGES=python3.11-minimal,libpython3.11-stdlib,bash,coreutils
DROPPED_PACKAGES="dpkg tar"
DATA_PACKAGES="tzdata ca-certificates"  # arch all, unpacked without their debconf/perl dependencies

debian_base() {  # ARCH -> a rootfs tarball at $cache/base-ARCH.tar, and its package list; kept while this
  # function and its package lists are unchanged (Debian's point releases arrive with the next change).
  local arch=$1 root="$cache/base-$arch" tarball="$cache/base-$arch.tar" key
  key=$( { declare -f debian_base; echo "$arch $BASE_PACKAGES $DROPPED_PACKAGES $DATA_PACKAGES"; } | sha256sum | cut -d' ' -f1)
  if [[ -f "$tarball" && "$(cat "$tarball.key" 2>/dev/null)" == "$key" ]]; then return; fi
  rm -rf "$root" "$tarball"
  echo "build-image: base for $arch (mmdebstrap, extract)" >&2
  mmdebstrap --quiet --mode=root --variant=extract --architectures="$arch" --include="$BASE_PACKAGES" \
    --skip=download/empty,cleanup/apt bookworm "$root" "$MIRROR" >&2
  local debs=("$root"/var/cache/apt/archives/*.deb)
  for package in $DATA_PACKAGES; do debs+=("$(deb_of "$package" all)"); dpkg -x "${debs[-1]}" "$root"; done
  : >"$cache/packages-$arch.tsv"
  for deb in "${debs[@]}"; do
    local pkg
    pkg=$(dpkg-deb -f "$deb" Package)
    if [[ " $DROPPED_PACKAGES " == *" $pkg "* ]]; then
      # Files only, deepest first; directories other packages share stay.
      dpkg-deb --fsys-tarfile "$deb" | tar -t | sed 's|^\./||' | sort -r | while read -r path; do
        if [[ -n "$path" && ! -d "$root/$path" ]]; then rm -f "$root/$path"; fi
      done
      continue
    fi
    deb_fields "$deb" >>"$cache/packages-$arch.tsv"
  done
  # Merged /usr, as every bookworm system is (the extract variant skips the hook that does it): /bin/bash
  # and /usr/bin/bash are the same file, whichever a user's script names in its #!.
  for dir in bin sbin lib lib64; do
    if [[ -d "$root/$dir" && ! -L "$root/$dir" ]]; then
      mkdir -p "$root/usr/$dir" && cp -a "$root/$dir/." "$root/usr/$dir/" && rm -rf "${root:?}/$dir"
      ln -s "usr/$dir" "$root/$dir"
    fi
  done
  # What dpkg's maintainer scripts would have made, without running them.
  ln -sf python3.11 "$root/usr/bin/python3"
  ln -sf mawk "$root/usr/bin/awk"  # update-alternatives' link: the bundled scripts call awk
  ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
  echo Etc/UTC >"$root/etc/timezone"
  mkdir -p "$root/etc/ssl/certs"
  find "$root/usr/share/ca-certificates" -name '*.crt' | sort | xargs cat >"$root/etc/ssl/certs/ca-certificates.crt"
  printf '%s\n' "root:x:0:0:root:/root:/bin/bash" "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin" \
    "edge:x:10001:10001:edge-metrics:/nonexistent:/usr/sbin/nologin" >"$root/etc/passwd"
  printf '%s\n' "root:x:0:" "nogroup:x:65534:" "edge:x:10001:" >"$root/etc/group"
  # Nothing of a package manager, no documentation: the image is rebuilt, never upgraded in place.
  rm -rf "$root"/var/cache/apt "$root"/var/lib/apt "$root"/etc/apt "$root"/var/lib/dpkg "$root"/etc/dpkg \
    "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info "$root"/usr/share/locale \
    "$root"/usr/share/lintian "$root"/usr/share/doc-base "$root"/etc/cron.daily "$root"/etc/logrotate.d \
    "$root"/lib/systemd "$root"/usr/lib/systemd "$root"/var/log/* "$root"/usr/lib/python3.11/test \
    "$root"/usr/lib/python3.11/idlelib "$root"/usr/lib/python3.11/tkinter "$root"/usr/lib/python3.11/ensurepip \
    "$root"/usr/lib/python3.11/lib2to3 "$root"/usr/lib/python3.11/pydoc_data "$root"/usr/sbin/update-ca-certificates
  # Byte-compiled here (a read-only root never sees a write; unchecked-hash: valid whatever the mtime).
  "$PYTHON" -m compileall -q -j 0 --invalidation-mode unchecked-hash -s "$root" -p / "$root/usr/lib/python3.11" >&2 || true
  tar --numeric-owner --sort=name --mtime=@0 -C "$root" -cf "$tarball" .
  rm -rf "$root"
  echo "$key" >"$tarball.key"
}

i2c_layer() {  # ARCH -> $ctx/i2c/ARCH: the i2c binaries the scripts call and their library, nothing else
  local arch=$1 dest="$ctx/i2c/$1" tmp="$cache/i2c-$1"
  rm -rf "$tmp" && mkdir -p "$tmp" "$dest/usr/sbin" "$dest/usr/lib/$(triplet "$arch")"
  : >"$cache/i2c-packages-$arch.tsv"
  for package in i2c-tools libi2c0; do
    dpkg -x "$(deb_of "$package" "$arch")" "$tmp"
    deb_fields "$(deb_of "$package" "$arch")" >>"$cache/i2c-packages-$arch.tsv"
  done
  # The ELF programs only: i2c-stub-from-dump and decode-* are perl scripts.
  for program in i2cdetect i2cdump i2cget i2cset i2ctransfer; do cp -a "$tmp/usr/sbin/$program" "$dest/usr/sbin/"; done
  cp -a "$tmp/usr/lib/$(triplet "$arch")"/libi2c.so.0* "$dest/usr/lib/$(triplet "$arch")/"
  rm -rf "$tmp"
}

app_layer() {  # -> $ctx/app: the wheel in /opt/edge-metrics, byte-compiled, and the entrypoint
  local wheels="$cache/wheel" dest="$ctx/app"
  rm -rf "$wheels" && mkdir -p "$wheels" "$dest/usr/local/bin"
  "$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$wheels" "$top" >&2
  wheel=$(ls "$wheels"/*.whl)
  "$PYTHON" -m pip install --quiet --no-deps --no-compile --target "$dest/opt/edge-metrics" "$wheel" >&2
  rm -rf "$dest/opt/edge-metrics/bin"  # console scripts with this machine's interpreter in their #!
  "$PYTHON" -m compileall -q --invalidation-mode unchecked-hash -s "$dest" -p / "$dest/opt/edge-metrics" >&2
  # The wheel's console script, for any python3 on PATH (Debian's /usr/bin or the python image's /usr/local/bin).
  local target module function
  IFS=' =:' read -r target module function < <(grep -E '^edge-metrics *=' "$dest"/opt/edge-metrics/*.dist-info/entry_points.txt)
  printf '%s\n' '#!/usr/bin/env python3' 'import sys' '' 'sys.path.insert(0, "/opt/edge-metrics")' \
    "from $module import $function" '' "sys.exit($function())" >"$dest/usr/local/bin/$target"
  chmod 0755 "$dest/usr/local/bin/edge-metrics"
}

sbom() {  # ARCH IMAGE_ID -> SPDX 2.3 JSON of the Debian packages and the wheel
  local arch=$1 file="$out/${name}_${IMAGE_TAG}_$(tag_of "$1").spdx.json"
  local lists=("$cache/i2c-packages-$arch.tsv")
  [[ "$BASE" != debian ]] || lists+=("$cache/packages-$arch.tsv")
  "$PYTHON" - "$wheel" "$ref" "$(platform "$arch")" "$BASE" "${lists[@]}" >"$file" <<'PY'
import hashlib, json, sys, zipfile
from pathlib import Path
wheel, ref, platform, base, *listings = sys.argv[1:]
packages = []
for listing in listings:
    for line in Path(listing).read_text().splitlines():
        name, version, architecture = line.split("\t")
        packages.append({"SPDXID": f"SPDXRef-deb-{name}".replace("+", "-").replace(".", "-"), "name": name,
                         "versionInfo": version, "supplier": "Organization: Debian",
                         "downloadLocation": "NOASSERTION",
                         "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                           "referenceLocator": f"pkg:deb/debian/{name}@{version}?arch={architecture}&distro=bookworm"}]})
if base != "debian":
    packages.append({"SPDXID": "SPDXRef-base", "name": base, "versionInfo": "NOASSERTION",
                     "downloadLocation": "NOASSERTION", "comment": "base image from a registry"})
with zipfile.ZipFile(wheel) as archive:
    meta = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
    fields = dict(l.split(": ", 1) for l in archive.read(meta).decode().splitlines() if ": " in l)
digest = hashlib.sha256(Path(wheel).read_bytes()).hexdigest()
packages.append({"SPDXID": "SPDXRef-wheel", "name": fields["Name"], "versionInfo": fields["Version"],
                 "packageFileName": Path(wheel).name, "downloadLocation": "NOASSERTION",
                 "checksums": [{"algorithm": "SHA256", "checksumValue": digest}],
                 "externalRefs": [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl",
                                   "referenceLocator": f"pkg:pypi/{fields['Name']}@{fields['Version']}"}]})
print(json.dumps({"spdxVersion": "SPDX-2.3", "dataLicense": "CC0-1.0", "SPDXID": "SPDXRef-DOCUMENT",
                  "name": f"{ref} {platform}", "documentNamespace": f"urn:edge-metrics:{ref}:{platform}",
                  "creationInfo": {"created": "1970-01-01T00:00:00Z", "creators": ["Tool: tools/build-image.sh"]},
                  "packages": packages}, indent=1))
PY
}

ctx="$cache/context"
rm -rf "$ctx" && mkdir -p "$ctx"
prepare_apt
for arch in $ARCHES; do
  download "i2c-tools:$arch=$(pinned i2c-tools)" "libi2c0:$arch=$(pinned libi2c0)"
done
[[ "$BASE" != debian ]] || download $DATA_PACKAGES
app_layer
rm -f "$out"/*.oci.tar "$out"/*.spdx.json "$out/.inputs"
# The name may be held by an earlier list, or by an image a test pulled from an archive.
pod manifest rm "$ref" >/dev/null 2>&1 || pod untag "$ref" "$ref" >/dev/null 2>&1 || true
pod manifest create "$ref" >/dev/null
for arch in $ARCHES; do
  i2c_layer "$arch"
  if [[ "$BASE" == debian ]]; then
    debian_base "$arch"
    base_ref="localhost/$name-base:bookworm-$arch"
    variant=(); [[ "$arch" == armhf ]] && variant=(--variant v7)
    pod import --quiet --arch "$(oci_arch "$arch")" "${variant[@]}" "$cache/base-$arch.tar" "$base_ref" >/dev/null
  else
    base_ref=$BASE
    pod pull --quiet --platform "$(platform "$arch")" "$BASE" >/dev/null
  fi
  arch_ref="$ref-$(tag_of "$arch")"
  echo "build-image: $arch_ref" >&2
  pod build --quiet --pull=never --platform "$(platform "$arch")" --build-arg "BASE=$base_ref" \
    --build-arg "I2C=i2c/$arch" -f "$top/Dockerfile" -t "$arch_ref" "$ctx" >/dev/null
  archive="$out/${name}_${IMAGE_TAG}_$(tag_of "$arch").oci.tar"
  pod push --quiet "$arch_ref" "oci-archive:$archive:$ref" >/dev/null
  pod manifest add "$ref" "containers-storage:$arch_ref" >/dev/null
  sbom "$arch"
done
pod manifest push --quiet --all "$ref" "oci-archive:$out/${name}_${IMAGE_TAG}.oci.tar:$ref" >/dev/null
# Images of earlier builds that no name holds any more (the storage is this build's own).
pod image prune --force >/dev/null 2>&1 || true
echo "$want" >"$out/.inputs"
echo "build-image: $ref in ${out#"$top"/}:" >&2
ls -l "$out" >&2
