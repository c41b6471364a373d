#!/bin/sh
# zfs compatibility wrapper for zfs-fuse 0.7.0 (Debian package zfs-fuse).
# Test infrastructure only: zfstest.Pool writes it as `zfs` into a temp
# directory put first on PATH, with @REAL_ZFS@ replaced by the real zfs.
#
# zfs-fuse implements ZFS pool version 23 with an older zfs(8) than the
# OpenZFS of FreeBSD 14. The gaps that jailkeeper's zfs package and
# github.com/mistifyio/go-zfs/v3 run into, and what this script does:
#
# 1. `zfs list -p` does not exist ("invalid option 'p'"). go-zfs lists with
#    -Hp after every create, snapshot and clone (GetDataset), and
#    zfs.Snapshots lists with -Hp. Emulated: the real `zfs list -H -o name`
#    with the other options gives the names in zfs's order, then one
#    `zfs get -Hp` gives exact values (zfs-fuse's get has -p), printed in the
#    -o column order. Needs -H.
# 2. The properties `written` and `logicalused` do not exist ("bad property
#    list: invalid property 'written'"); go-zfs asks for both in every list.
#    Printed as "-", which go-zfs reads as 0.
# 3. `zfs get -t TYPE` does not exist ("invalid option 't'"); zfs.Inventory
#    passes -t filesystem. Emulated for -t filesystem only: the rows of
#    snapshots (names with '@') are dropped. Volumes would stay (tests make
#    none). Other types are refused. Needs -H and the name column first.
# 4. `zfs set` takes one property=value ("cannot open 'k=v': invalid
#    dataset name"); zfs.SetProps sets several at once. Emulated with one
#    `zfs set` per property, which is NOT atomic as in OpenZFS. One target.
# Not covered because jailkeeper avoids it: the `clones` property.
# Everything else goes to the real zfs unchanged, exit status included.

real='@REAL_ZFS@'
unsupported=' written logicalused '

set -f # names and property lists are split on purpose below, never globbed

die() {
	echo "zfs-compat: $*" >&2
	exit 2
}

list_compat() {
	p=0 h=0 props=
	n=$#
	while [ "$n" -gt 0 ]; do
		a=$1
		shift
		n=$((n - 1))
		case $a in
		-o)
			props=$1
			shift
			n=$((n - 1))
			continue
			;;
		-t | -s | -S | -d)
			set -- "$@" "$a" "$1"
			shift
			n=$((n - 1))
			continue
			;;
		-*)
			case $a in *p*) p=1 ;; esac
			case $a in *H*) h=1 ;; esac
			a=$(printf '%s' "$a" | tr -d p)
			[ "$a" = - ] && continue
			;;
		esac
		set -- "$@" "$a"
	done
	need=$p
	IFS=,
	for q in $props; do
		case $unsupported in *" $q "*) need=1 ;; esac
	done
	unset IFS
	if [ "$need" = 0 ]; then
		if [ -n "$props" ]; then
			exec "$real" list -o "$props" "$@"
		fi
		exec "$real" list "$@"
	fi
	[ "$h" = 1 ] || die "list -p or unsupported properties are emulated only with -H"
	[ -n "$props" ] || die "list -p is emulated only with -o"
	names=$("$real" list -H -o name "$@") || exit $?
	[ -n "$names" ] || exit 0
	getprops=
	IFS=,
	for q in $props; do
		case $unsupported in *" $q "*) continue ;; esac
		[ "$q" = name ] && continue
		getprops=$getprops${getprops:+,}$q
	done
	unset IFS
	vals=
	if [ -n "$getprops" ]; then
		# $names unquoted: one argument per line; names never hold blanks.
		vals=$("$real" get -Hp -o name,property,value "$getprops" $names) || exit $?
	fi
	printf '%s\n' "$vals" | NAMES=$names PROPS=$props UNSUPPORTED=$unsupported awk '
		BEGIN { nn = split(ENVIRON["NAMES"], N, "\n"); np = split(ENVIRON["PROPS"], P, ",") }
		{
			i = index($0, "\t"); if (i == 0) next
			rest = substr($0, i + 1); j = index(rest, "\t"); if (j == 0) next
			V[substr($0, 1, i - 1), substr(rest, 1, j - 1)] = substr(rest, j + 1)
		}
		END {
			for (k = 1; k <= nn; k++) {
				line = ""
				for (q = 1; q <= np; q++) {
					p = P[q]
					if (p == "name") v = N[k]
					else if (index(ENVIRON["UNSUPPORTED"], " " p " ")) v = "-"
					else if ((N[k], p) in V) v = V[N[k], p]
					else v = "-"
					line = line (q > 1 ? "\t" : "") v
				}
				print line
			}
		}'
}

get_compat() {
	types= h=0 fields=
	n=$#
	while [ "$n" -gt 0 ]; do
		a=$1
		shift
		n=$((n - 1))
		case $a in
		-t)
			types=$1
			shift
			n=$((n - 1))
			continue
			;;
		-o)
			fields=$1
			set -- "$@" "$a" "$1"
			shift
			n=$((n - 1))
			continue
			;;
		-s | -d)
			set -- "$@" "$a" "$1"
			shift
			n=$((n - 1))
			continue
			;;
		-*)
			case $a in *H*) h=1 ;; esac
			;;
		esac
		set -- "$@" "$a"
	done
	[ -z "$types" ] && exec "$real" get "$@"
	[ "$types" = filesystem ] || die "get -t $types is not emulated (only -t filesystem)"
	[ "$h" = 1 ] || die "get -t is emulated only with -H"
	case $fields in '' | name | name,*) ;; *) die "get -t is emulated only with the name column first" ;; esac
	out=$("$real" get "$@") || exit $?
	[ -n "$out" ] || exit 0
	printf '%s\n' "$out" | awk -F '\t' '$1 !~ /@/'
}

set_compat() {
	n=0 target=
	for a; do
		case $a in *=*) n=$((n + 1)) ;; esac
		target=$a
	done
	[ "$n" -le 1 ] && exec "$real" set "$@"
	[ $(($# - n)) = 1 ] || die "set of several properties is emulated for one dataset only"
	for a; do
		case $a in
		*=*) "$real" set "$a" "$target" || exit $? ;;
		esac
	done
}

case $1 in
list)
	shift
	list_compat "$@"
	;;
get)
	shift
	get_compat "$@"
	;;
set)
	shift
	set_compat "$@"
	;;
*)
	exec "$real" "$@"
	;;
esac
