#!/usr/bin/env bash
# install.sh [--prefix DIR] [--root DIR] [--python PATH] [--no-systemd] [--no-user]
#
# Installs (or upgrades) the Edge X-ray appliance from this unpacked offline archive, with
# no network: every file is checked against SHA256SUMS first, the software goes into a new
# virtual environment under PREFIX/releases/ (pip --no-index, wheels from this archive
# only), and PREFIX/current is switched to it only once it runs; a failed install leaves the
# installed software as it was. Creates the `edge` system user, /etc/edge/edge.toml (only
# when absent), /var/lib/edge and its keys/ directory, installs the systemd, udev and
# tmpfiles files, and enables and (re)starts edge.service. Configuration, data, models and
# keys are never touched by an upgrade.
#
#   --prefix DIR   where the software goes (default /opt/edge; taken as given, since a
#                  virtual environment only runs at the path it was built at)
#   --root DIR     put /etc, /var/lib and /usr under DIR instead of / (staging, tests)
#   --python PATH  the Python to build the environment with (default python3)
#   --no-systemd   install the units but do not reload, enable or start anything
#   --no-user      do not create the edge user; files keep the installing user's owner
set -euo pipefail
umask 022  # the service user must read the software, whatever the technician's umask

PREFIX=/opt/edge
ROOT=""
PYTHON=python3
SYSTEMD=1
MAKE_USER=1
USER_NAME=edge
HERE="$(cd "$(dirname "$0")" && pwd)"

say() { echo "install: $*"; }
die() { echo "install: ERROR: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || die "--prefix needs a directory"; PREFIX="$2"; shift 2 ;;
    --root) [ $# -ge 2 ] || die "--root needs a directory"; ROOT="$2"; shift 2 ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; PYTHON="$2"; shift 2 ;;
    --no-systemd) SYSTEMD=0; shift ;;
    --no-user) MAKE_USER=0; shift ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done
case "$PREFIX" in /*) ;; *) die "--prefix must be an absolute path, got '$PREFIX'" ;; esac
case "$ROOT" in ""|/*) ;; *) die "--root must be an absolute path, got '$ROOT'" ;; esac
PREFIX="${PREFIX%/}"
ROOT="${ROOT%/}"
if [ "$(id -u)" -ne 0 ] && { [ -z "$ROOT" ] || [ "$MAKE_USER" -eq 1 ]; }; then
  die "run as root (sudo $0), or stage with --root DIR --no-user"
fi

# ---------------------------------------------------------------- 1. the archive is intact
verify_archive() {
  [ -f "$HERE/SHA256SUMS" ] || die "$HERE/SHA256SUMS is missing: this is not a complete edge offline archive"
  local bad listed present extra
  if ! bad="$(cd "$HERE" && sha256sum --check --strict --quiet SHA256SUMS 2>&1)"; then
    die "the archive is damaged or was altered; these files do not match SHA256SUMS (copy it again, and compare the archive's .sha256):
$bad"
  fi
  # A file not listed (a wheel slipped in) would be installable through --find-links.
  listed="$(cd "$HERE" && sed 's/^[0-9a-f]\{64\}  //' SHA256SUMS | LC_ALL=C sort)"
  present="$(cd "$HERE" && find . -type f ! -name SHA256SUMS | sed 's#^\./##' | LC_ALL=C sort)"
  extra="$(LC_ALL=C comm -13 <(echo "$listed") <(echo "$present"))"
  [ -z "$extra" ] || die "files not listed in SHA256SUMS; refusing to install (unpack the archive afresh):
$extra"
  say "archive verified: $(wc -l < "$HERE/SHA256SUMS") files match SHA256SUMS"
}
verify_archive

VERSION="$(sed -n 's/^VERSION=//p' "$HERE/BUILD-INFO")"
PYTAG="$(sed -n 's/^PYTHON_TAG=//p' "$HERE/BUILD-INFO")"
[ -n "$VERSION" ] && [ -n "$PYTAG" ] || die "$HERE/BUILD-INFO lacks VERSION or PYTHON_TAG"
command -v "$PYTHON" >/dev/null 2>&1 || die "'$PYTHON' not found: this archive needs Python ${PYTAG#cp3} (3.${PYTAG#cp3}); give its path with --python"
have="$("$PYTHON" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
[ "$have" = "$PYTAG" ] || die "this archive was built for Python $PYTAG but '$PYTHON' is $have; install that Python or use an archive built for it"

ETC="$ROOT/etc/edge"
DATA="$ROOT/var/lib/edge"
PIP_WHEEL="$(ls "$HERE"/wheels/pip-*.whl 2>/dev/null | head -n1)"
[ -n "$PIP_WHEEL" ] || die "no pip wheel in $HERE/wheels"
say "installing edge $VERSION into $PREFIX${ROOT:+ (system files under $ROOT)}"

# ---------------------------------------------------------------- 2. user and directories
owner() {  # install(1) ownership options, none when there is no edge user
  [ "$MAKE_USER" -eq 1 ] && echo "-o $1 -g $2" || true
}
if [ "$MAKE_USER" -eq 1 ]; then
  getent group dialout >/dev/null || groupadd --system dialout
  if ! getent passwd "$USER_NAME" >/dev/null; then
    say "creating system user $USER_NAME (member of dialout, for serial scanners)"
    group=--user-group
    getent group "$USER_NAME" >/dev/null && group="--gid $USER_NAME"
    # shellcheck disable=SC2086
    useradd --system $group --groups dialout --home-dir /var/lib/edge --no-create-home \
      --shell /usr/sbin/nologin --comment "Edge X-ray appliance" "$USER_NAME"
  elif ! id -nG "$USER_NAME" | tr ' ' '\n' | grep -qx dialout; then
    usermod -a -G dialout "$USER_NAME"
  fi
fi
make_dir() {  # make_dir MODE USER GROUP PATH: created when absent, an existing one is left alone
  if [ ! -d "$4" ]; then
    # shellcheck disable=SC2046
    install -d -m "$1" $(owner "$2" "$3") "$4"
    say "created $4 ($1 $2:$3)"
  fi
}
for link in .venv models current; do
  if [ -e "$PREFIX/$link" ] && [ ! -L "$PREFIX/$link" ]; then
    die "$PREFIX/$link is not this installer's (not a symbolic link); move it away first"
  fi
done
mkdir -p "$PREFIX/releases"
make_dir 0750 root "$USER_NAME" "$ETC"
make_dir 0750 "$USER_NAME" "$USER_NAME" "$DATA"
make_dir 0750 root "$USER_NAME" "$DATA/keys"

# ---------------------------------------------------------------- 3. the new release, beside the old
RELEASE="$VERSION-$(date -u +%Y%m%dT%H%M%SZ)-$$"
NEW="$PREFIX/releases/$RELEASE"
cleanup_failed() {
  rm -rf "$NEW"
  echo "install: FAILED; the installed software is unchanged${OLD:+ (still $OLD)}" >&2
}
OLD="$(readlink "$PREFIX/current" 2>/dev/null || true)"
trap cleanup_failed EXIT
say "building $NEW"
mkdir -p "$NEW/models"
"$PYTHON" -m venv --without-pip "$NEW/venv"
# pip runs from its own wheel; --isolated and PIP_CONFIG_FILE=/dev/null keep every index,
# find-links and constraint of this machine's configuration out: only this archive counts.
PIP_CONFIG_FILE=/dev/null "$NEW/venv/bin/python" "$PIP_WHEEL/pip" install --isolated --quiet \
  --no-index --find-links "$HERE/wheels" --only-binary :all: --no-cache-dir \
  --disable-pip-version-check --no-warn-script-location "edge-xray==$VERSION" pip \
  || die "pip could not install edge-xray $VERSION from $HERE/wheels (its message is above)"
cp -r "$HERE/models/demo-xray-det" "$NEW/models/"
chmod -R go-w,a+rX "$NEW"
# It must run before it replaces anything: the version report loads the shipped model's
# manifest, and the present configuration must suit the new version.
EDGE_MODEL="$NEW/models/demo-xray-det" "$NEW/venv/bin/edge" --version --data "$NEW" >/dev/null \
  || die "the new software does not start (edge --version failed)"
if [ -f "$ETC/edge.toml" ]; then
  "$NEW/venv/bin/edge" serve --check-config "$ETC/edge.toml" >/dev/null \
    || die "$ETC/edge.toml is not valid for edge $VERSION (errors above); correct it, then run install.sh again"
fi

# ---------------------------------------------------------------- 4. switch over
ln -sfn "releases/$RELEASE" "$PREFIX/current.new"
mv -T "$PREFIX/current.new" "$PREFIX/current"  # rename(2): atomic
[ -L "$PREFIX/.venv" ] || ln -sfn current/venv "$PREFIX/.venv"
[ -L "$PREFIX/models" ] || ln -sfn current/models "$PREFIX/models"
trap - EXIT
say "$PREFIX/current -> releases/$RELEASE"
# Keep the one before (to go back by hand: ln -sfn releases/<old> current.new && mv -T ...).
for old in "$PREFIX"/releases/*; do
  name="$(basename "$old")"
  if [ "releases/$name" != "releases/$RELEASE" ] && [ "releases/$name" != "$OLD" ]; then
    rm -rf "$old"
    say "removed old release $name"
  fi
done

# ---------------------------------------------------------------- 5. configuration (never overwritten)
sed "s#@PREFIX@#$PREFIX#g" "$HERE/config/edge.toml" > "$ETC/edge.toml.dist.tmp"
mv "$ETC/edge.toml.dist.tmp" "$ETC/edge.toml.dist"
chmod 0644 "$ETC/edge.toml.dist"
if [ -e "$ETC/edge.toml" ]; then
  say "kept $ETC/edge.toml (this version's default: $ETC/edge.toml.dist)"
else
  # shellcheck disable=SC2046
  install -m 0640 $(owner root "$USER_NAME") "$ETC/edge.toml.dist" "$ETC/edge.toml"
  say "wrote $ETC/edge.toml"
fi

# ---------------------------------------------------------------- 6. system files
put() {  # put MODE SOURCE DEST: the file with /opt/edge replaced by PREFIX
  mkdir -p "$(dirname "$2")"
  sed "s#/opt/edge/#$PREFIX/#g" "$1" > "$2.tmp"
  chmod "$3" "$2.tmp"
  mv "$2.tmp" "$2"
  say "installed $2"
}
put "$HERE/systemd/edge.service" "$ROOT/etc/systemd/system/edge.service" 0644
put "$HERE/systemd/edge-usb-upgrade@.service" "$ROOT/etc/systemd/system/edge-usb-upgrade@.service" 0644
put "$HERE/udev/90-edge-usb-upgrade.rules" "$ROOT/etc/udev/rules.d/90-edge-usb-upgrade.rules" 0644
put "$HERE/tmpfiles/edge.conf" "$ROOT/usr/lib/tmpfiles.d/edge.conf" 0644
put "$HERE/bin/edge-usb-upgrade" "$ROOT/usr/lib/edge/edge-usb-upgrade" 0755
# `edge` on the PATH for the technician, aimed at the appliance's data and shipped model.
mkdir -p "$ROOT/usr/local/bin"
cat > "$ROOT/usr/local/bin/edge.tmp" <<EOF
#!/bin/sh
# Installed by the edge offline installer: the appliance's edge command.
: "\${EDGE_DATA:=/var/lib/edge}"
: "\${EDGE_MODEL:=$PREFIX/models/demo-xray-det}"
export EDGE_DATA EDGE_MODEL
exec "$PREFIX/.venv/bin/edge" "\$@"
EOF
chmod 0755 "$ROOT/usr/local/bin/edge.tmp"
mv "$ROOT/usr/local/bin/edge.tmp" "$ROOT/usr/local/bin/edge"
say "installed $ROOT/usr/local/bin/edge"

# ---------------------------------------------------------------- 7. the service
if [ "$SYSTEMD" -eq 1 ] && [ -z "$ROOT" ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload
  udevadm control --reload 2>/dev/null || true
  systemd-tmpfiles --create /usr/lib/tmpfiles.d/edge.conf
  systemctl enable edge.service
  systemctl restart edge.service  # starts it, or restarts it on the new release
  say "edge.service enabled and (re)started; check it with: systemctl status edge"
else
  say "systemd not used here; on the appliance run: systemctl daemon-reload && systemctl enable --now edge"
fi
say "done: edge $VERSION in $PREFIX; config $ETC/edge.toml, data $DATA"
