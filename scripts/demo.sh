#!/bin/sh
# make demo: builds the hello app, makes a local deploy repo from
# deploy-repo-example, starts Caddy and the agent (process runtime), and shows
# hello served through Caddy. Ctrl-C stops everything it started.
# DEMO_CHECK=1 exits after the first answer instead of waiting (used by tests).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
demo=$top/.demo
bin=$top/bin
caddy_http=${DEMO_HTTP:-127.0.0.1:8080}
agent_http=${DEMO_AGENT:-127.0.0.1:9180}

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Stop release processes the agent started (they outlive the agent by design).
stop_releases() {
	for p in /proc/[0-9]*; do
		exe=$(readlink "$p/exe" 2>/dev/null) || continue
		case $exe in "$demo"/state/*) kill "${p#/proc/}" 2>/dev/null || true ;; esac
	done
}

cleanup() {
	trap - INT TERM EXIT
	say "stopping the agent, Caddy and the releases"
	[ -n "${agent_pid:-}" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
	[ -n "${caddy_pid:-}" ] && kill "$caddy_pid" 2>/dev/null && wait "$caddy_pid" 2>/dev/null || true
	stop_releases
}

stop_releases
rm -rf "$demo"
mkdir -p "$demo/artifacts"
cd "$top"

say "building hello v1 and v2"
for v in v1 v2; do
	go build -ldflags "-X main.version=$v" -o "$demo/artifacts/hello-$v" ./examples/hello
done
sum() { sha256sum "$1" | cut -d' ' -f1; }

say "making a deploy repo from deploy-repo-example"
git init -q --bare -b main "$demo/deploy.git"
git clone -q "$demo/deploy.git" "$demo/deploy-repo" 2>/dev/null
cp -R deploy-repo-example/. "$demo/deploy-repo/"
cd "$demo/deploy-repo"
git config user.email demo@example.com
git config user.name "jailkeeper demo"
# Point the example services at the locally built artifact.
for f in services/*.yaml; do
	sed -i \
		-e "s|^\(  url:\).*|\1 file://$demo/artifacts/hello-v1|" \
		-e "s|^\(  sha256:\).*|\1 $(sum "$demo/artifacts/hello-v1")|" \
		-e "s|^sha:.*|sha: $(printf v1 | sha1sum | cut -d' ' -f1)|" "$f"
done
"$bin/jailkeeper" validate services
git add -A
git commit -q -m "Deploy hello v1"
git push -q origin main
cd "$top"

say "starting Caddy (admin API on a unix socket, $caddy_http handed over as fd/3)"
cat > "$demo/caddy.json" <<JSON
{"admin": {"listen": "unix/$demo/caddy-admin.sock"}}
JSON
"$bin/jailkeeper" run-caddy --listen "$caddy_http" -- "$bin/caddy" run --config "$demo/caddy.json" > "$demo/caddy.log" 2>&1 &
caddy_pid=$!
trap cleanup INT TERM EXIT

cat > "$demo/jailkeeper.yaml" <<YAML
repo: {url: "file://$demo/deploy.git", branch: main, path: services, poll: "@every 5s"}
runtime: process
state_dir: $demo/state
process: {pool: 127.77.0.0/16}
artifacts: {file_root: "$demo/artifacts"}
caddy: {admin: "unix/$demo/caddy-admin.sock", server: jailkeeper, listen: ["fd/3"]}
listen: $agent_http
YAML
for _ in $(seq 50); do [ -S "$demo/caddy-admin.sock" ] && break; sleep 0.1; done

say "starting jailkeeper (log: .demo/agent.log)"
"$bin/jailkeeper" run --config "$demo/jailkeeper.yaml" > "$demo/agent.log" 2>&1 &
agent_pid=$!

say "waiting for hello to be served through Caddy"
for i in $(seq 120); do
	if out=$(curl -sf -H 'Host: hello.example.com' "http://$caddy_http/"); then
		break
	fi
	if ! kill -0 "$agent_pid" 2>/dev/null; then
		echo "the agent exited:" >&2
		tail -20 "$demo/agent.log" >&2
		exit 1
	fi
	[ "$i" = 120 ] && { echo "hello was not served within 60s; agent log:" >&2; tail -30 "$demo/agent.log" >&2; exit 1; }
	sleep 0.5
done

echo
echo "\$ curl -H 'Host: hello.example.com' http://$caddy_http/"
echo "$out"
echo
say "waiting for the first pass to finish (health watch, then status)"
for _ in $(seq 120); do
	curl -sf "http://$agent_http/readyz" >/dev/null && break
	sleep 0.5
done
"$bin/jailkeeper" status --addr "$agent_http"
cat <<EOF

Deploy a new SHA (hello v2 is built already):
  cd .demo/deploy-repo
  sed -i -e "s|hello-v1|hello-v2|" -e "s|^\(  sha256:\).*|\1 $(sum "$demo/artifacts/hello-v2")|" \\
         -e "s|^sha:.*|sha: $(printf v2 | sha1sum | cut -d' ' -f1)|" services/hello.yaml
  git commit -qam "Deploy hello v2" && git push -q && ../../bin/jailkeeper sync --addr $agent_http
  curl -H 'Host: hello.example.com' http://$caddy_http/version

Roll back:
  git revert --no-edit HEAD && git push -q && ../../bin/jailkeeper sync --addr $agent_http

Status: bin/jailkeeper status --addr $agent_http    Metrics: curl http://$agent_http/metrics
Press Ctrl-C to stop the agent, Caddy and the releases.
EOF
[ "${DEMO_CHECK:-}" = 1 ] && exit 0
wait "$agent_pid"
