#!/usr/bin/env bash
# port-check: what can be checked of the FreeBSD port without a ports tree.
# - every rc.d script (USE_RC_SUBR) has files/<name>.in, passes sh -n once
#   %%PREFIX%%, %%LOCALBASE%% and %%ETCDIR%% are substituted as the ports
#   framework's SUB_LIST does, and run under a stand-in /etc/rc.subr
#   (start, start when not enabled, stop) prints exactly testdata/<name>.out;
# - pkg-plist lists exactly what the Makefile installs: the GO_TARGET binary
#   and every ${INSTALL_*} of post-install (rc.d scripts are added to the
#   plist by USE_RC_SUBR itself and must not be listed);
# - every file under files/ is used by the Makefile.
# Run with UPDATE=1 to rewrite testdata/*.out.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
port=$here/sysutils/jailkeeper
fail=0
err() { echo "port-check: $*" >&2; fail=1; }

prefix=/usr/local
subst() {
	sed -e "s|%%PREFIX%%|$prefix|g" -e "s|%%LOCALBASE%%|$prefix|g" \
		-e "s|%%ETCDIR%%|$prefix/etc/jailkeeper|g" "$1"
}
makevar() { # the value of a one-line Makefile variable
	sed -n "s/^$1=[[:space:]]*//p" "$port/Makefile"
}

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# A stand-in for /etc/rc.subr with what rc.subr's run_rc_command does for
# start and stop (libexec/rc/rc.subr): refuse unless ${rcvar} is YES; run
# a custom ${1}_cmd (start_cmd, stop_cmd) instead of the default when the
# script sets one; else for start run start_precmd, then eval "$command
# $rc_flags $command_args", and for stop signal the pidfile's process with
# SIGTERM. Commands print instead of running (in a function, a line that
# runs the port's own binary is turned into an echo of it).
cat >"$tmp/rc.subr" <<'SUBR'
load_rc_config() { [ -r "$RC_CONF" ] && . "$RC_CONF"; return 0; }
checkyesno() {
	eval _v=\$$1
	case $_v in [Yy][Ee][Ss]|[Tt][Rr][Uu][Ee]|[Oo][Nn]|1) return 0 ;; esac
	return 1
}
mkdir() { echo "mkdir $*"; }
run_rc_command() {
	if ! checkyesno "$rcvar"; then
		echo "Cannot '$1' $name. Set $rcvar to YES in /etc/rc.conf or use 'one$1' instead of '$1'."
		return 0
	fi
	eval _cmd=\$${1}_cmd
	if [ -n "$_cmd" ]; then
		eval "$_cmd"
		return
	fi
	case $1 in
	start)
		eval _precmd=\$${1}_precmd
		[ -n "$_precmd" ] && $_precmd
		echo "XDG_CONFIG_HOME=${XDG_CONFIG_HOME:-} XDG_DATA_HOME=${XDG_DATA_HOME:-}"
		eval "set -- $command $rc_flags $command_args"
		for a in "$@"; do printf '[%s] ' "$a"; done
		echo
		;;
	stop) echo "kill -TERM \$(cat $pidfile)" ;;
	*) echo "unsupported $1"; return 1 ;;
	esac
}
SUBR

rcsubr=$(makevar USE_RC_SUBR)
[ -n "$rcsubr" ] || err "Makefile: USE_RC_SUBR is empty"
for name in $rcsubr; do
	in=$port/files/$name.in
	if [ ! -f "$in" ]; then err "USE_RC_SUBR names $name but files/$name.in is missing"; continue; fi
	script=$tmp/$name
	subst "$in" >"$script"
	if grep -n '%%[A-Z_]*%%' "$script" >&2; then err "files/$name.in: a %%VAR%% the checker does not substitute"; fi
	sh -n "$script" || err "files/$name.in: sh -n failed"
	grep -q "^# PROVIDE: $name\$" "$script" || err "files/$name.in: no '# PROVIDE: $name'"
	grep -q "^name=$name\$" "$script" || err "files/$name.in: name is not $name"
	grep -q "^rcvar=${name}_enable\$" "$script" || err "files/$name.in: rcvar is not ${name}_enable"
	sed -i -e "s|^\. /etc/rc.subr\$|. $tmp/rc.subr|" -e "s|^\t$prefix/bin/|\techo $prefix/bin/|" "$script"
	{
		echo "## start, ${name}_enable=YES"
		echo "${name}_enable=YES" >"$tmp/rc.conf"
		RC_CONF=$tmp/rc.conf sh "$script" start
		echo "## start, not enabled"
		: >"$tmp/rc.conf"
		RC_CONF=$tmp/rc.conf sh "$script" start
		echo "## stop"
		echo "${name}_enable=YES" >"$tmp/rc.conf"
		RC_CONF=$tmp/rc.conf sh "$script" stop
	} >"$tmp/$name.out" 2>&1 || err "files/$name.in: running it under the stand-in rc.subr failed"
	want=$here/testdata/$name.out
	if [ "${UPDATE:-}" = 1 ]; then
		cp "$tmp/$name.out" "$want"
	elif ! diff -u "$want" "$tmp/$name.out"; then
		err "files/$name.in: output differs from testdata/$name.out (UPDATE=1 rewrites it)"
	fi
done

# What the Makefile installs, as plist paths.
etcdir=etc/jailkeeper
{
	target=$(makevar GO_TARGET)
	[ -n "$target" ] || err "Makefile: GO_TARGET is empty"
	for t in $target; do echo "bin/$(basename "${t#*:}")"; done
	# ${INSTALL_*} SRC \ DST (a continued line): DST is the next word after SRC.
	sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$port/Makefile" |
		sed -n 's/^[[:space:]]*\${INSTALL_[A-Z]*}[[:space:]]*[^[:space:]]*[[:space:]]*\(.*\)$/\1/p' |
		sed -e 's|^\${STAGEDIR}\${ETCDIR}|'"$etcdir"'|' -e 's|^\${STAGEDIR}\${PREFIX}/||'
} | sort >"$tmp/installed"
sed -e 's/^@sample[[:space:]]*//' -e "s|%%ETCDIR%%|$etcdir|" "$port/pkg-plist" | grep -v '^@' | sort >"$tmp/plist"
if ! diff -u "$tmp/installed" "$tmp/plist"; then
	err "pkg-plist does not list exactly what the Makefile installs (- installed, + plist)"
fi
for name in $rcsubr; do
	grep -q "rc.d/$name" "$port/pkg-plist" && err "pkg-plist lists etc/rc.d/$name: USE_RC_SUBR adds it"
done
grep -q '\${STAGEDIR}' "$tmp/installed" && err "an install destination the checker cannot map: $(grep STAGEDIR "$tmp/installed")"

# Every file under files/ is used: an rc.d script, a SUB_FILES entry or a
# ${FILESDIR} source.
for f in "$port"/files/*; do
	b=$(basename "$f")
	case " $rcsubr " in *" ${b%.in} "*) continue ;; esac
	case " $(makevar SUB_FILES) " in *" ${b%.in} "*) continue ;; esac
	grep -q "\${FILESDIR}/$b" "$port/Makefile" || err "files/$b is not used by the Makefile"
done
for f in pkg-descr pkg-plist; do [ -s "$port/$f" ] || err "$f is missing or empty"; done

if [ "$fail" != 0 ]; then exit 1; fi
echo "port-check: ok ($rcsubr; $(wc -l <"$tmp/plist") plist entries)"
