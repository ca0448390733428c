#!/bin/bash
# Install the kiosk on a fresh Raspberry Pi OS bookworm (64-bit). Run from a copy of the
# source tree, as root:   sudo provisioning/install.sh
#
# Steps: apt packages; the console off tty1 (the kiosk's screen); time zone and NTP; a
# `kiosk` system user in the video and gpio groups; a venv in /opt/kiosk/venv, without a
# pip of its own, that also sees apt's Python packages (picamera2, libcamera, lgpio, pygame,
# numpy, Pillow come from Raspberry Pi OS, so pip builds nothing); /etc/kiosk with a starting
# config and the example; /var/lib/kiosk for its state; the systemd unit, enabled. Running it
# again is safe: it upgrades the package and keeps an existing config.
#
# Options:
#   --dry-run      print every step without doing it
#   --root DIR     install under DIR instead of / (for tests): skips apt, user and systemctl
#   --source DIR   the source tree to install (default: the folder above this script)
#   --no-deps      install only the kiosk package, not its Python dependencies
#   --list-packages  print the apt packages (Debian's, then the Raspberry Pi archive's) and exit
#   -h, --help     this text
# Then provision the device:  sudo kiosk provision --destination ID --venue NAME --broker URL ...
set -euo pipefail

# In Debian's archive, so also on Raspberry Pi OS (pygame: Debian's is linked with the
# system SDL, which has the kmsdrm video driver; PyPI's aarch64 wheel has not). Pillow and
# pyzbar are apt's too (bookworm's satisfy setup.cfg), which keeps the venv small;
# cryptography, pydantic, gpiozero and cbor2 are older in bookworm than setup.cfg asks, so
# pip puts them in the venv. python3-pip runs pip from outside the venv, which has none.
APT_PACKAGES=(
    python3-venv python3-pip python3-pygame python3-numpy python3-pil python3-pyzbar
    libzbar0 libglib2.0-0 fonts-dejavu-core mosquitto-clients openssl ca-certificates
)
# Only in the Raspberry Pi archive (archive.raspberrypi.com), which Raspberry Pi OS has.
RPI_APT_PACKAGES=(python3-picamera2 python3-libcamera python3-lgpio)
KIOSK_USER=kiosk
KIOSK_GROUPS=(video gpio render input audio)
KIOSK_TIMEZONE="${KIOSK_TIMEZONE:-Asia/Ho_Chi_Minh}"

dry_run=false
root=""
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
pip_deps=true

usage() {
    sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=true; shift ;;
        --root) root=${2:?--root needs a folder}; shift 2 ;;
        --source) source_dir=${2:?--source needs a folder}; shift 2 ;;
        --no-deps) pip_deps=false; shift ;;
        --list-packages) echo "${APT_PACKAGES[*]}"; echo "${RPI_APT_PACKAGES[*]}"; exit 0 ;;
        -h|--help) usage 0 ;;
        *) echo "install.sh: unknown argument $1" >&2; usage 2 ;;
    esac
done

if [ -n "$root" ]; then
    root=$(mkdir -p "$root" && cd "$root" && pwd)
fi
OPT=$root/opt/kiosk
VENV=$OPT/venv
ETC=$root/etc/kiosk
STATE=$root/var/lib/kiosk
UNIT_DIR=$root/etc/systemd/system
BIN=$root/usr/local/bin

step() { echo "==> $*"; }

# run CMD...: do it, or only print it in a dry run.
run() {
    if $dry_run; then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

# skip WHY: true (and says so) when this step cannot run in a --root install.
skip() {
    if [ -n "$root" ]; then
        echo "    (skipped under --root: $1)"
        return 0
    fi
    return 1
}

check_platform() {
    step "checking the platform"
    if [ -z "$root" ] && ! $dry_run && [ "$(id -u)" != 0 ]; then
        echo "install.sh: run as root (sudo $0)" >&2
        exit 2
    fi
    [ -f "$source_dir/setup.cfg" ] || { echo "install.sh: no kiosk source in $source_dir (use --source)" >&2; exit 2; }
    local codename=unknown
    [ -r /etc/os-release ] && codename=$(sed -n "s/^VERSION_CODENAME=//p" /etc/os-release)
    if [ "$(uname -m)" != aarch64 ] || [ "$codename" != bookworm ]; then
        echo "    note: made for Raspberry Pi OS bookworm on aarch64; this is $codename on $(uname -m)"
    fi
}

install_apt_packages() {
    step "installing apt packages: ${APT_PACKAGES[*]} ${RPI_APT_PACKAGES[*]}"
    skip "apt" && return 0
    run apt-get update -q
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        "${APT_PACKAGES[@]}" "${RPI_APT_PACKAGES[@]}"
}

# The kiosk owns the display (KMS/DRM): a login prompt on tty1 and the kernel's console
# blanking would fight it for the screen.
free_the_console() {
    step "taking the console off tty1 and turning console blanking off"
    local cmdline=$root/boot/firmware/cmdline.txt
    if [ -f "$cmdline" ] && ! grep -q 'consoleblank=0' "$cmdline"; then
        run sed -i '1s/$/ consoleblank=0/' "$cmdline"
    fi
    skip "systemctl" && return 0
    run systemctl disable --now getty@tty1.service
    run systemctl mask getty@tty1.service
}

# Raspberry Pi OS finds the camera module itself (camera_auto_detect=1 in config.txt);
# only a camera it cannot detect needs a dtoverlay line there.
note_camera_detection() {
    local config=$root/boot/firmware/config.txt
    if [ -f "$config" ] && ! grep -q '^camera_auto_detect=1' "$config"; then
        echo "    note: $config lacks camera_auto_detect=1: add it, or a dtoverlay for your camera"
    fi
}

create_user() {
    step "creating the $KIOSK_USER system user (groups: ${KIOSK_GROUPS[*]})"
    skip "useradd" && return 0
    if ! id "$KIOSK_USER" >/dev/null 2>&1; then
        run useradd --system --user-group --home-dir /var/lib/kiosk --no-create-home \
            --shell /usr/sbin/nologin "$KIOSK_USER"
    fi
    local group
    for group in "${KIOSK_GROUPS[@]}"; do
        if getent group "$group" >/dev/null; then
            run usermod -a -G "$group" "$KIOSK_USER"
        fi
    done
}

install_venv() {
    step "installing kiosk into $VENV"
    if [ ! -x "$VENV/bin/python" ]; then
        run mkdir -p "$OPT"
        # picamera2 and lgpio come from apt, so the venv must see the system's packages.
        # No pip (or setuptools) inside it: apt's pip installs into it from outside.
        run python3 -m venv --system-site-packages --without-pip "$VENV"
    fi
    local extra=(--upgrade)
    $pip_deps || extra+=(--no-deps)
    # --only-binary: anything pip would have to compile on the Pi is an error here, not a
    # half-hour build (lgpio, pygame and numpy are apt's, seen through the system site).
    # The constraints keep apt's numpy 1.x (see the file).
    run python3 -m pip --python "$VENV/bin/python" install -q --only-binary=:all: "${extra[@]}" \
        -c "$source_dir/provisioning/constraints.txt" "${source_dir}[device]"
    run mkdir -p "$BIN" "$OPT/docs"
    run ln -sfn "$VENV/bin/kiosk" "$BIN/kiosk"
    run cp -r "$source_dir/docs/." "$OPT/docs/"
}

# owned PATH MODE [OWNER:GROUP]: set mode, and owner when the kiosk user exists.
owned() {
    run chmod "$2" "$1"
    if [ -n "${3:-}" ] && [ -z "$root" ] && id "$KIOSK_USER" >/dev/null 2>&1; then
        run chown "$3" "$1"
    fi
}

install_config() {
    step "writing $ETC (config) and $STATE (state)"
    run mkdir -p "$ETC" "$STATE"
    owned "$ETC" 0750 "root:$KIOSK_USER"
    owned "$STATE" 0700 "$KIOSK_USER:$KIOSK_USER"
    run install -m 0644 "$source_dir/provisioning/kiosk.toml.example" "$ETC/kiosk.toml.example"
    if [ -e "$ETC/kiosk.toml" ]; then
        echo "    keeping the existing $ETC/kiosk.toml"
    elif $dry_run; then
        echo "+ write a starting config for the Pi's camera, pins and screen to $ETC/kiosk.toml"
    else
        starting_config >"$ETC/kiosk.toml"
        chmod 0644 "$ETC/kiosk.toml"
    fi
}

starting_config() {
    cat <<'EOF'
# kiosk configuration for a Raspberry Pi, written by provisioning/install.sh.
# `kiosk provision` fills in the device, destination and broker; every key is in
# kiosk.toml.example beside this file. Check with `kiosk config check`.

[camera]
backend = "picamera2"

[feedback]
gpio = "native"
screen = "fullscreen"

[paths]
state_dir = "/var/lib/kiosk"
EOF
}

install_unit() {
    step "installing the systemd unit"
    run mkdir -p "$UNIT_DIR"
    run install -m 0644 "$source_dir/systemd/kiosk.service" "$UNIT_DIR/kiosk.service"
    skip "systemctl" && return 0
    run systemctl daemon-reload
    run systemctl enable kiosk.service
    if [ -e "$STATE/device.key" ]; then
        run systemctl restart kiosk.service
    else
        echo "    not started: provision the device first, then: sudo systemctl start kiosk"
    fi
}

# The screen's clock and today's counts are in local time: the venue's, Vietnam's by default.
# NTP is systemd-timesyncd; the unit is ordered After=time-sync.target, systemd's convention.
# systemd-time-wait-sync stays disabled on purpose: it would hold time-sync.target (and so
# the kiosk) until the network answers, and a kiosk must scan offline; each event says
# whether the clock was synchronised.
set_timezone() {
    step "setting the time zone to $KIOSK_TIMEZONE and turning on NTP"
    skip "timedatectl" && return 0
    run timedatectl set-timezone "$KIOSK_TIMEZONE"
    run timedatectl set-ntp true
}

check_platform
note_camera_detection
install_apt_packages
free_the_console
set_timezone
create_user
install_venv
install_config
install_unit
step "done. Next: sudo kiosk provision ... ; sudo -u $KIOSK_USER kiosk selftest (see docs/deployment.md)"
