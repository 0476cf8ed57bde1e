#!/usr/bin/env bash
# test.sh — end-to-end tests for mesibo-host, the filter module and the echo
# test module, under each ABI revision (doc, r2019, r2020).
#
#   cabi/host/test.sh              build into a temp dir and run
#   cabi/host/test.sh --valgrind   same, every host run under
#                                  valgrind --error-exitcode=9 --leak-check=no
# Prints "ok"/"FAIL" per check and "N passed, N failed"; exits 1 on any failure.
set -u

here=$(cd "$(dirname "$0")" && pwd)
VALGRIND=()
SLOW=1
if [ "${1:-}" = "--valgrind" ]; then
	VALGRIND=(valgrind -q --error-exitcode=9 --leak-check=no)
	SLOW=4
fi

tmp=$(mktemp -d)
srv_pid=
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null
	rm -rf "$tmp"
}
trap cleanup EXIT

pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() {
	fail=$((fail + 1))
	echo "FAIL - $1"
	if [ -n "${2:-}" ]; then printf '%s\n' "$2" | sed 's/^/      | /' | head -60; fi
}

# ---- build (must be warning-free) ----
bin="$tmp/out"
if make -C "$here" OUT="$bin" testmods >"$tmp/build.log" 2>&1; then
	ok "build"
else
	bad "build" "$(cat "$tmp/build.log")"
	echo "$pass passed, $fail failed"
	exit 1
fi
if grep -qi 'warning' "$tmp/build.log"; then
	bad "build has compiler warnings" "$(grep -i warning "$tmp/build.log")"
else
	ok "build has no compiler warnings"
fi

# run ABI CONF INPUT [extra args...] -> $OUT (stdout), $ERR (stderr), $RC
run() {
	local abi=$1 conf=$2 input=$3
	shift 3
	OUT=$(printf '%s' "$input" | timeout $((60 * SLOW)) "${VALGRIND[@]}" "$bin/mesibo-host" \
		--conf "$conf" --modules "$bin" --abi "$abi" "$@" 2>"$tmp/stderr")
	RC=$?
	ERR=$(cat "$tmp/stderr")
	if [ ${#VALGRIND[@]} -gt 0 ] && { [ "$RC" = 9 ] || grep -q '^==[0-9]*==' "$tmp/stderr"; }; then
		bad "valgrind reported errors ($abi, $conf)" "$ERR"
	fi
}

# has NAME LINE: OUT contains exactly this line
has() {
	if grep -qxF -- "$2" <<<"$OUT"; then ok "$1"; else bad "$1: no line '$2'" "$OUT"; fi
}
# hasnt NAME REGEX: no line of OUT matches
hasnt() {
	if grep -qE -- "$2" <<<"$OUT"; then bad "$1: unexpected line matching '$2'" "$OUT"; else ok "$1"; fi
}
lineno() { grep -nxF -- "$1" <<<"$OUT" | head -1 | cut -d: -f1; }
# before NAME LINE1 LINE2: both present, LINE1 first
before() {
	local a b
	a=$(lineno "$2")
	b=$(lineno "$3")
	if [ -n "$a" ] && [ -n "$b" ] && [ "$a" -lt "$b" ]; then ok "$1"; else
		bad "$1: expected '$2' before '$3'" "$OUT"
	fi
}
rc_is() {
	if [ "$RC" = "$2" ]; then ok "$1"; else bad "$1: exit code $RC, expected $2" "$OUT
$ERR"; fi
}

# ---- configurations ----
cat >"$tmp/filter.conf" <<'EOF'
# mesibo.conf with other settings, which the host ignores
listen = 0.0.0.0:5222
module = filter {
	blocked_words = darn, Heck ,gosh golly
	notify = 1
}
EOF

cat >"$tmp/chain.conf" <<'EOF'
module echo
{
  greeting = hello, world = yes
}

module=filter
{
  blocked_words = darn
}
module missing_module
EOF

cat >"$tmp/twice.conf" <<'EOF'
module filter {
  blocked_words = apple
  notify = 0
}
module filter {
  blocked_words = banana
}
EOF

cat >"$tmp/badkey.conf" <<'EOF'
module filter {
  blocked_words = a
  colour = blue
}
module echo {
  init_rc = 3
}
module echo {
  cleanup_rc = 7
}
EOF

printf 'module echo\n' >"$tmp/echo.conf"

# bad confs: "content|expected line number|expected message part"
bad_confs=(
	'module echo {\n  a = b\n|1|unterminated block'
	'# c\nmodule\n|2|missing module name'
	'module = \n|1|missing module name'
	'module foo-bar\n|1|invalid module name'
	'module echo {\n  this is junk\n}\n|2|expected '\''key = value'\'''
	'\n\nmodule echo extra\n|3|unexpected text after module name'
	'module echo {\n  a = b\n  {\n}\n|3|expected'
)

http_ok=0
if command -v python3 >/dev/null 2>&1; then
	mkdir -p "$tmp/www"
	printf 'hello from http' >"$tmp/www/a.txt"
	port=$((20000 + RANDOM % 20000))
	python3 -m http.server "$port" --bind 127.0.0.1 --directory "$tmp/www" >/dev/null 2>&1 &
	srv_pid=$!
	for _ in $(seq 50); do
		if curl -s -o /dev/null "http://127.0.0.1:$port/a.txt"; then http_ok=1; break; fi
		sleep 0.1
	done
fi

for abi in doc r2019 r2020; do
	echo "# --- abi $abi"

	# 1. filter: consumes blocked words, passes others, notifies the sender
	run "$abi" "$tmp/filter.conf" 'login bob
msg alice bob 1 -- hello there
msg alice bob 2 -- oh DARN!
msg alice bob 3 -- darning is fine
msg alice bob 4 -- gosh  golly, two spaces
msg alice bob 5 -- oh GOSH golly!
sync s1
quit
'
	has "$abi filter: ready" "ready abi=$abi modules=filter"
	has "$abi filter: loaded" "load filter ok"
	has "$abi filter: clean word passes" "decision filter id=1 from=alice to=bob result=PASS"
	has "$abi filter: clean message delivered" "deliver bob from=alice id=1 refid=0 group=0 flags=0 type=0 expiry=0 len=11 -- hello there"
	has "$abi filter: blocked word consumed (case-insensitive)" "decision filter id=2 from=alice to=bob result=CONSUMED"
	hasnt "$abi filter: blocked message not delivered" '^deliver bob from=alice id=2 '
	has "$abi filter: notice sent to the sender" "send filter from=bob to=alice id=1000000001 refid=2 group=0 flags=0 type=0 expiry=3600 len=49 -- message blocked: contains a word not allowed here"
	has "$abi filter: notice queued (sender offline)" "queued alice id=1000000001 from=bob"
	has "$abi filter: whole words only" "decision filter id=3 from=alice to=bob result=PASS"
	has "$abi filter: phrase with two spaces passes" "decision filter id=4 from=alice to=bob result=PASS"
	has "$abi filter: phrase consumed" "decision filter id=5 from=alice to=bob result=CONSUMED"
	before "$abi filter: sync after the notice" "queued alice id=1000000001 from=bob" "sync s1"
	has "$abi filter: cleanup" "cleanup filter rc=0"
	rc_is "$abi filter: exit 0" 0

	# 2. queueing, chain, missing module, echo statuses, sync, reverse cleanup
	run "$abi" "$tmp/chain.conf" 'login bob
msg alice bob 10 -- for bob
msg bob carol 11 -- line1\nline2\ttab\x01 back\\slash ü
sync q1
login carol
msg alice echo 4 -- hi
sync s2
login alice
read alice 1004
msg alice echo 6 -- darn
sync s3
logout alice
msg alice echo 7 expiry=1 -- short
sleep '$((1500 * SLOW))'
sync s4
msg alice echo 8 -- garbage
call alice bob
callstatus alice bob
bogus command
msg alice
sync s5
quit
msg alice bob 99 -- after quit
'
	has "$abi chain: missing module reported" "load missing_module fail $bin/mesibo_mod_missing_module.so: cannot open shared object file: No such file or directory"
	has "$abi chain: host goes on" "ready abi=$abi modules=echo,filter"
	has "$abi chain: config value with spaces, commas, =" "log echo 0 -- config greeting=hello, world = yes"
	if [ "$abi" != doc ]; then
		has "$abi chain: mesibo_util_getconfig" "log echo 0 -- getconfig greeting=hello, world = yes"
	fi
	has "$abi chain: on_login struct" "log echo 0 -- login bob online=1"
	has "$abi chain: online delivery" "deliver bob from=alice id=10 refid=0 group=0 flags=0 type=0 expiry=0 len=7 -- for bob"
	has "$abi chain: offline queued" "queued carol id=11 from=bob"
	before "$abi chain: queued before sync" "queued carol id=11 from=bob" "sync q1"
	before "$abi chain: delivered on login" "login carol online=1" 'deliver carol from=bob id=11 refid=0 group=0 flags=0 type=0 expiry=0 len=30 -- line1\nline2\ttab\x01 back\\slash ü'
	has "$abi chain: echo consumes" "decision echo id=4 from=alice to=echo result=CONSUMED"
	hasnt "$abi chain: consumed message not seen by later module" '^decision filter id=4 '
	has "$abi chain: module send printed" "send echo from=echo to=alice id=1004 refid=4 group=0 flags=3 type=0 expiry=0 len=8 -- echo: hi"
	before "$abi chain: sync waits for module sends" "queued alice id=1004 from=echo" "sync s2"
	before "$abi chain: module message delivered on login" "login alice online=1" "deliver alice from=echo id=1004 refid=4 group=0 flags=3 type=0 expiry=0 len=8 -- echo: hi"
	has "$abi chain: status DELIVERED" "status echo id=1004 from=echo to=alice status=2 result=0"
	has "$abi chain: module saw DELIVERED" "log echo 0 -- status id=1004 refid=4 from=echo to=alice status=2"
	has "$abi chain: status READ" "status echo id=1004 from=echo to=alice status=3 result=0"
	has "$abi chain: module saw READ" "log echo 0 -- status id=1004 refid=4 from=echo to=alice status=3"
	before "$abi chain: READ after DELIVERED" "status echo id=1004 from=echo to=alice status=2 result=0" "status echo id=1004 from=echo to=alice status=3 result=0"
	has "$abi chain: module message skips the chain (not filtered)" "deliver alice from=echo id=1006 refid=6 group=0 flags=3 type=0 expiry=0 len=10 -- echo: darn"
	hasnt "$abi chain: no decision for module message" '^decision [a-z]+ id=1006 '
	has "$abi chain: module message queued" "queued alice id=1007 from=echo"
	has "$abi chain: module message expired" "expired alice id=1007 from=echo"
	has "$abi chain: status FAIL on expiry" "status echo id=1007 from=echo to=alice status=128 result=0"
	has "$abi chain: module saw FAIL" "log echo 0 -- status id=1007 refid=7 from=echo to=alice status=128"
	before "$abi chain: expired before sync" "expired alice id=1007 from=echo" "sync s4"
	has "$abi chain: garbage result printed" "decision echo id=8 from=alice to=echo result=30583"
	has "$abi chain: garbage result passes on" "decision filter id=8 from=alice to=echo result=PASS"
	has "$abi chain: call" "call echo from=alice to=bob result=PASS"
	has "$abi chain: callstatus" "callstatus echo from=alice to=bob result=CONSUMED"
	has "$abi chain: unknown command" "error unknown command 'bogus'"
	if grep -q '^error usage: msg' <<<"$OUT"; then ok "$abi chain: msg usage error"; else bad "$abi chain: msg usage error" "$OUT"; fi
	has "$abi chain: sync s5" "sync s5"
	before "$abi chain: cleanup in reverse order" "cleanup filter rc=0" "cleanup echo rc=0"
	before "$abi chain: bye last" "cleanup echo rc=0" "bye"
	hasnt "$abi chain: nothing after quit" 'id=99'
	if [ "$(tail -1 <<<"$OUT")" = "bye" ]; then ok "$abi chain: bye is the last line"; else bad "$abi chain: bye is the last line" "$OUT"; fi
	rc_is "$abi chain: exit 0" 0

	# 3. two instances, init failures, unknown config key
	run "$abi" "$tmp/twice.conf" 'login bob
msg alice bob 1 -- an apple
msg alice bob 2 -- a banana
msg alice bob 3 -- a cherry
quit
'
	has "$abi twice: both loaded" "ready abi=$abi modules=filter,filter"
	has "$abi twice: first instance consumes" "decision filter id=1 from=alice to=bob result=CONSUMED"
	has "$abi twice: second instance consumes" "decision filter id=2 from=alice to=bob result=CONSUMED"
	hasnt "$abi twice: notify=0 instance silent" 'refid=1 .*message blocked'
	has "$abi twice: notify=1 instance notifies" "queued alice id=1000000001 from=bob"
	has "$abi twice: cherry delivered" "deliver bob from=alice id=3 refid=0 group=0 flags=0 type=0 expiry=0 len=8 -- a cherry"
	if [ "$(grep -c '^cleanup filter rc=0$' <<<"$OUT")" = 2 ]; then ok "$abi twice: two cleanups"; else bad "$abi twice: two cleanups" "$OUT"; fi

	run "$abi" "$tmp/badkey.conf" 'login bob
msg alice bob 1 -- hi
quit
'
	has "$abi badkey: unknown key logged" "log filter 0 -- filter: unknown config item 'colour' (known: blocked_words, notify)"
	has "$abi badkey: init fails" "load filter fail rc=-1"
	has "$abi badkey: init rc reported" "load echo fail rc=3"
	has "$abi badkey: remaining module loads" "ready abi=$abi modules=echo"
	has "$abi badkey: cleanup rc reported" "cleanup echo rc=7"
	has "$abi badkey: message still routed" "deliver bob from=alice id=1 refid=0 group=0 flags=0 type=0 expiry=0 len=2 -- hi"

	# 4. module threads, groups, EOF as quit, log level
	run "$abi" "$tmp/echo.conf" 'login alice
login bob
msg alice echo 20 -- thread
sleep '$((500 * SLOW))'
sync t1
group 7 alice bob carol
msg alice room 30 group=7 -- hi room
logout bob
' --log-level 0
	for i in 1 2 3; do
		has "$abi thread: send $i from a module thread" "send echo from=echo to=alice id=$((2020 + i)) refid=20 group=0 flags=0 type=0 expiry=0 len=13 -- from thread $i"
	done
	has "$abi group: decision" "decision echo id=30 from=alice to=room result=PASS"
	has "$abi group: delivered to online member" "deliver bob from=alice id=30 refid=0 group=7 flags=0 type=0 expiry=0 len=7 -- hi room"
	has "$abi group: queued for offline member" "queued carol id=30 from=alice"
	hasnt "$abi group: not to the sender" '^(deliver|queued) alice id=30'
	has "$abi logout: on_login online=0" "log echo 0 -- login bob online=0"
	has "$abi eof: cleanup" "cleanup echo rc=0"
	has "$abi eof: bye" "bye"
	rc_is "$abi eof: exit 0" 0

	run "$abi" "$tmp/filter.conf" 'quit
' --log-level 0
	hasnt "$abi loglevel 0 hides level 1" '^log filter 1 '
	run "$abi" "$tmp/filter.conf" 'quit
' --log-level 1
	has "$abi loglevel 1 shows level 1" "log filter 1 -- filter: abi $abi, 3 blocked word(s), notify=1"

	# 5. conf syntax errors: file:line and exit 2
	for bc in "${bad_confs[@]}"; do
		content=${bc%%|*}
		rest=${bc#*|}
		line=${rest%%|*}
		msg=${rest#*|}
		printf "$content" >"$tmp/bad.conf"
		run "$abi" "$tmp/bad.conf" 'quit
'
		if [ "$RC" = 2 ] && grep -qF -- "$tmp/bad.conf:$line: $msg" <<<"$ERR" &&
			grep -qF -- "error $tmp/bad.conf:$line: $msg" <<<"$OUT"; then
			ok "$abi conf error at line $line: $msg"
		else
			bad "$abi conf error at line $line: $msg (rc=$RC)" "$OUT
$ERR"
		fi
	done
	python3 -c 'print("# " + "x" * 5000)' >"$tmp/long.conf" 2>/dev/null ||
		printf '# %05000d\n' 0 >"$tmp/long.conf"
	run "$abi" "$tmp/long.conf" ''
	if [ "$RC" = 2 ] && grep -qF "long.conf:1: line too long" <<<"$ERR"; then ok "$abi conf: line too long"; else bad "$abi conf: line too long" "$ERR"; fi

	# 6. http through the host (doc mod->http, r2019/r2020 mesibo_http)
	if [ "$http_ok" = 1 ]; then
		run "$abi" "$tmp/echo.conf" "login alice
msg alice echo 40 -- http http://127.0.0.1:$port/a.txt
sleep $((1000 * SLOW))
msg alice echo 41 -- http http://127.0.0.1:1/
sleep $((1000 * SLOW))
sync h
"
		has "$abi http: body received, progress 100 then DONE" "deliver alice from=echo id=3040 refid=40 group=0 flags=0 type=0 expiry=0 len=43 -- http ok progress=100 len=15 hello from http"
		has "$abi http: DONE event" "http echo http://127.0.0.1:$port/a.txt state=4 progress=100 size=0"
		has "$abi http: error gives progress -1" "deliver alice from=echo id=3041 refid=41 group=0 flags=0 type=0 expiry=0 len=28 -- http fail progress=-1 len=0 "
	else
		echo "skip - http tests (no python3 http server)"
	fi
done

# ---- bench options and --stamp (every revision) ----
# matches NAME REGEX: some line of OUT matches
matches() {
	if grep -qE -- "$2" <<<"$OUT"; then ok "$1"; else bad "$1: no line matching '$2'" "$OUT"; fi
}
for abi in doc r2019 r2020; do
	run "$abi" "$tmp/filter.conf" 'bench 4 alice bob lat nfrom=2 nto=2 id0=10 rate=2000 -- a darn word
bench 3 alice bob -- clean
bench 3 alice bob lat rate=0 -- x
sync b
'
	matches "$abi bench lat rate: percentiles and seconds" '^bench n=4 ns_per_msg=[0-9.]+ allocs_per_msg=na pass=0 consumed=4 p50_ns=[0-9]+ p90_ns=[0-9]+ p99_ns=[0-9]+ p999_ns=[0-9]+ max_ns=[0-9]+ seconds=[0-9.]+$'
	matches "$abi bench nfrom/nto/id0: second call from alice2 to bob2, id 12" '^send filter from=bob2 to=alice2 id=[0-9]+ refid=12 '
	matches "$abi bench without options: the old line" '^bench n=3 ns_per_msg=[0-9.]+ allocs_per_msg=na pass=3 consumed=0$'
	has "$abi bench: bad option" "error usage: bench <n 1..1e8> <from> <to> [lat] [rate=R] [nfrom=K] [nto=K] [id0=N] -- <text>"
	run "$abi" "$tmp/filter.conf" 'msg alice bob 7 -- darn
sync s
' --stamp
	matches "$abi --stamp: decision with t and dt" '^decision filter id=7 from=alice to=bob result=CONSUMED t=[0-9]+ dt=[0-9]+$'
	matches "$abi --stamp: send with t" '^send filter from=bob to=alice id=[0-9]+ t=[0-9]+ refid=7 '
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
