#!/usr/bin/env bash
# Installs the external peers used by the end-to-end tests, only when missing:
#   ffmpeg/ffprobe          (package ffmpeg)
#   nginx + RTMP module     (packages nginx, libnginx-mod-rtmp)
#   chromium                (package chromium, WebRTC tests)
#   C compiler              (packages gcc, libc6-dev; needed by `go test -race`)
#   redis-server            (package redis-server, cluster tests)
# Idempotent: when everything is present it only prints one line per tool.
# Installed services are never started.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
# nginx lives in /usr/sbin, which is not on PATH for non-root users.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

RTMP_MODULE_SO=/usr/lib/nginx/modules/ngx_rtmp_module.so
RTMP_MODULE_CONF=/usr/share/nginx/modules-available/mod-rtmp.conf

have() { command -v "$1" >/dev/null 2>&1; }

have_ffmpeg() { have ffmpeg && have ffprobe; }
have_nginx_rtmp() { have nginx && { [ -e "$RTMP_MODULE_SO" ] || [ -e "$RTMP_MODULE_CONF" ]; }; }
chromium_bin() {
	local b
	for b in chromium chromium-browser; do
		if have "$b"; then
			command -v "$b"
			return 0
		fi
	done
	return 1
}
have_chromium() { chromium_bin >/dev/null; }
have_cc() { have gcc || have cc; }
have_redis() { have redis-server; }

# --- what is missing --------------------------------------------------------
missing_pkgs=()
have_ffmpeg || missing_pkgs+=(ffmpeg)
have_nginx_rtmp || missing_pkgs+=(nginx libnginx-mod-rtmp)
have_chromium || missing_pkgs+=(chromium)
have_cc || missing_pkgs+=(gcc libc6-dev)
have_redis || missing_pkgs+=(redis-server)

installed_now=" "

if [ "${#missing_pkgs[@]}" -gt 0 ]; then
	if [ "$(id -u)" -ne 0 ] || ! have apt-get; then
		echo "install-tools: missing test tools; please install:" >&2
		echo "  sudo apt-get install -y --no-install-recommends ${missing_pkgs[*]}" >&2
		exit 1
	fi

	log="$(mktemp -t install-tools.XXXXXX.log)"
	created_policy=""
	cleanup() {
		if [ -n "$created_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
		rm -f "$log"
	}
	trap cleanup EXIT

	# Keep package maintainer scripts from starting services (nginx on :80).
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		created_policy=1
	fi

	apt_opts=(-q -y -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

	echo "install-tools: installing ${missing_pkgs[*]}"
	if ! apt-get "${apt_opts[@]}" update >"$log" 2>&1; then
		echo "install-tools: warning: apt-get update failed; trying to install anyway" >&2
		tail -n 20 "$log" >&2 || true
	fi
	if ! apt-get "${apt_opts[@]}" install --no-install-recommends "${missing_pkgs[@]}" >"$log" 2>&1; then
		echo "install-tools: apt-get install failed:" >&2
		tail -n 50 "$log" >&2 || true
		exit 1
	fi
	installed_now=" ${missing_pkgs[*]} "

	# Do not let a freshly installed nginx come up on boot either.
	if have systemctl && [ -d /run/systemd/system ]; then
		[[ "$installed_now" == *" nginx "* ]] && systemctl disable --quiet nginx >/dev/null 2>&1 || true
		[[ "$installed_now" == *" redis-server "* ]] && systemctl disable --quiet redis-server >/dev/null 2>&1 || true
	fi
fi

# --- verify and report --------------------------------------------------------
status() { # status <package>: "installed" if installed by this run, else "found"
	if [[ "$installed_now" == *" $1 "* ]]; then echo installed; else echo found; fi
}
fail() {
	echo "install-tools: $*" >&2
	exit 1
}

have_ffmpeg || fail "ffmpeg/ffprobe still missing"
# Smoke test: the tests publish H.264 + AAC over RTMP, so make sure the
# encoders are there (catches a stripped-down ffmpeg install).
if ! ffmpeg -nostdin -hide_banner -loglevel error \
	-f lavfi -i testsrc2=size=128x72:rate=15 \
	-f lavfi -i sine=frequency=440:sample_rate=44100 \
	-t 0.3 -c:v libx264 -preset ultrafast -c:a aac -f flv -y /dev/null </dev/null; then
	fail "ffmpeg cannot encode H.264/AAC (libx264 missing?)"
fi
echo "ffmpeg:   $(status ffmpeg) $(ffmpeg -hide_banner -version 2>/dev/null | head -n 1)"
echo "ffprobe:  $(status ffmpeg) $(ffprobe -hide_banner -version 2>/dev/null | head -n 1)"

have_nginx_rtmp || fail "nginx or its RTMP module still missing"
nginx_module="$RTMP_MODULE_SO"
[ -e "$nginx_module" ] || nginx_module="$RTMP_MODULE_CONF"
echo "nginx:    $(status nginx) $(nginx -v 2>&1 | head -n 1) (rtmp: $nginx_module)"

have_chromium || fail "chromium still missing"
chromium_path="$(chromium_bin)"
chromium_version="$("$chromium_path" --version 2>/dev/null | head -n 1 || true)"
echo "chromium: $(status chromium) ${chromium_version:-unknown version} ($chromium_path)"

have_cc || fail "C compiler still missing"
cc_bin=gcc
have gcc || cc_bin=cc
echo "cc:       $(status gcc) $("$cc_bin" --version 2>/dev/null | head -n 1)"

have_redis || fail "redis-server still missing"
echo "redis:    $(status redis-server) $(redis-server --version 2>/dev/null | head -n 1)"
