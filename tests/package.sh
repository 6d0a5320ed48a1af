#!/bin/sh
# The Debian package, built and inspected, never installed (run by .ci/run
# after make check; or by hand: tests/package.sh).
#
# 1. Copies the source tree (tracked and new files, no build outputs) to a
#    temporary directory, so nothing the build makes lands in this tree.
# 2. dpkg-buildpackage -us -uc -b there (dh, autoreconf, the unit tests).
# 3. dpkg-deb -c: the binaries, the config as a conffile in /etc/awaitd,
#    the units, the man pages and docs are in it; the installed config and
#    man pages name the package's paths, not the source tree's.
# 4. lintian: no error and no warning (tags overridden in
#    debian/awaitd.lintian-overrides carry their reason there).
# 5. A plain source install (make install DESTDIR, default prefix) of the
#    same copy puts every file under /usr/local.
#
# Installs debhelper and lintian (apt) when missing: only this check needs
# them. Exit 0 when every check passes; the failing check is named.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
TMP=$(mktemp -d "${TMPDIR:-/tmp}/awaitd-pkg.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$TMP"' EXIT
fail() { echo "package: FAIL: $*" >&2; exit 1; }
start=$(date +%s)

need=""
for p in debhelper dpkg-dev lintian fakeroot; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || need="$need $p"
done
if [ -n "$need" ]; then
    echo "package: installing$need"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

# ---- 1. a copy of the sources ---------------------------------------------------
mkdir "$TMP/awaitd"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
    # --ignore-failed-read: a tracked file deleted in the work tree is left out.
    (cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
        tar --null --ignore-failed-read -cf - -T - 2>/dev/null) | tar -C "$TMP/awaitd" -xf -
else
    (cd "$SRC" && tar cf - --exclude=./.git .) | (cd "$TMP/awaitd" && tar xf -)
    (cd "$TMP/awaitd" && { [ ! -f Makefile ] || make distclean >/dev/null; })
fi

# ---- 2. the build ------------------------------------------------------------------
echo "package: dpkg-buildpackage -us -uc -b in $TMP/awaitd"
(cd "$TMP/awaitd" && dpkg-buildpackage -us -uc -b -j2) >"$TMP/build.log" 2>&1 || {
    tail -40 "$TMP/build.log" >&2
    fail "dpkg-buildpackage (log above)"
}
built=$(date +%s)
set -- "$TMP"/awaitd_*.deb
[ -f "$1" ] || fail "no awaitd_*.deb was built"
DEB=$1
echo "package: built $(basename "$DEB") in $((built - start)) s"

# ---- 3. contents -------------------------------------------------------------------
dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\./|/|' >"$TMP/files"
for f in /usr/bin/awaitd /usr/bin/awaitload /usr/bin/awaitd-journal /etc/awaitd/awaitd.conf \
         /lib/systemd/system/awaitd.service /lib/systemd/system/awaitd.socket \
         /usr/share/man/man8/awaitd.8.gz /usr/share/man/man5/awaitd.conf.5.gz \
         /usr/share/man/man1/awaitload.1.gz /usr/share/man/man1/awaitd-journal.1.gz \
         /usr/share/doc/awaitd/copyright \
         /usr/share/doc/awaitd/QUEUES.md /usr/share/doc/awaitd/TIMERS.md \
         /usr/share/doc/awaitd/METRICS.md /usr/share/doc/awaitd/HTTP2.md; do
    # dh_compress gzips docs of 4 KiB or more: either name will do for those.
    grep -Eqx "$f|${f%.md}.md.gz" "$TMP/files" || fail "$f is not in the package (dpkg-deb -c)"
done
if grep -E '^/usr/local|^/etc/awaitd\.conf$|^/usr/lib/systemd' "$TMP/files"; then
    fail "files outside the package's layout (above)"
fi
dpkg-deb -x "$DEB" "$TMP/root"
dpkg-deb -e "$DEB" "$TMP/control"
grep -qx /etc/awaitd/awaitd.conf "$TMP/control/conffiles" || fail "/etc/awaitd/awaitd.conf is not a conffile"
grep -q 'DynamicUser=yes' "$TMP/root/lib/systemd/system/awaitd.service" ||
    fail "the service does not run as a DynamicUser"
grep -qx 'ExecStart=/usr/bin/awaitd -c /etc/awaitd/awaitd.conf' "$TMP/root/lib/systemd/system/awaitd.service" ||
    fail "the service's ExecStart does not name /usr/bin/awaitd and /etc/awaitd/awaitd.conf"
grep -q 'systemctl' "$TMP/control/postinst" || fail "no dh_installsystemd snippet in postinst"
conf="$TMP/root/etc/awaitd/awaitd.conf"
if grep -n 'src/awaitd\|conf/awaitd\.conf' "$conf"; then
    fail "the installed config names the source tree (above)"
fi
grep -q '/usr/bin/awaitd -c /etc/awaitd/awaitd.conf' "$conf" || fail "the installed config does not say how to run it"
grep -qx 'path = /var/lib/awaitd/awaitd.journal' "$conf" || fail "the installed config's journal is not in /var/lib/awaitd"
"$TMP/root/usr/bin/awaitd" -t -c "$conf" >/dev/null || fail "the packaged awaitd rejects its own config"
"$TMP/root/usr/bin/awaitd" -h | grep -q '(default /etc/awaitd/awaitd.conf)' ||
    fail "the packaged awaitd's default config is not /etc/awaitd/awaitd.conf"
for page in man8/awaitd.8 man5/awaitd.conf.5; do
    zcat "$TMP/root/usr/share/man/$page.gz" >"$TMP/page"
    if grep -n '@[a-z_]*@\|/usr/local' "$TMP/page"; then fail "$page: source-build paths (above)"; fi
    grep -q '/etc/awaitd/awaitd\.conf' "$TMP/page" || fail "$page does not name /etc/awaitd/awaitd.conf"
done

# ---- 4. lintian --------------------------------------------------------------------
if ! lintian --fail-on error,warning --tag-display-limit 0 "$DEB" >"$TMP/lintian" 2>&1; then
    cat "$TMP/lintian" >&2
    fail "lintian reported errors or warnings (above)"
fi
[ ! -s "$TMP/lintian" ] || sed 's/^/package: lintian: /' "$TMP/lintian"

# ---- 5. a source install stays under the prefix ------------------------------------------
(cd "$TMP/awaitd" && make distclean >/dev/null 2>&1 || true
 ./configure --quiet && make -j2 >/dev/null 2>&1 && make install DESTDIR="$TMP/stage" >/dev/null) ||
    fail "./configure && make install DESTDIR=... (default prefix)"
(cd "$TMP/stage" && find . -type f | sed 's|^\.||' | sort) >"$TMP/staged"
if grep -v '^/usr/local/' "$TMP/staged"; then fail "make install put files outside /usr/local (above)"; fi
for f in /usr/local/lib/systemd/system/awaitd.service /usr/local/etc/awaitd.conf \
         /usr/local/share/doc/awaitd/QUEUES.md /usr/local/share/doc/awaitd/TIMERS.md \
         /usr/local/share/doc/awaitd/METRICS.md /usr/local/share/doc/awaitd/REDIS.md \
         /usr/local/share/man/man1/awaitload.1 /usr/local/bin/awaitd-journal \
         /usr/local/share/man/man1/awaitd-journal.1; do
    grep -qx "$f" "$TMP/staged" || fail "make install did not install $f"
done
grep -q '/usr/local/etc/awaitd.conf' "$TMP/stage/usr/local/share/man/man8/awaitd.8" ||
    fail "awaitd(8) of a source build does not name /usr/local/etc/awaitd.conf"

echo "package: ok ($(($(date +%s) - start)) s: build $((built - start)) s, checks $(($(date +%s) - built)) s)"
