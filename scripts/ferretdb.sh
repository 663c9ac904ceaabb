#!/usr/bin/env bash
# FerretDB 1.24.2 (a MongoDB-wire server on SQLite) for the MongoDB read-model tests: no mongod can be
# installed on the CI machine kind, FerretDB builds from the Go module proxy. Go is used for nothing else.
#
#   scripts/ferretdb.sh build          build once into the machine-level cache, print the binary's path
#   scripts/ferretdb.sh start ENVFILE  start a server on a free 127.0.0.1 port with data in a fresh temp
#                                      folder, wait until it answers, write MONGODB_URL=… and
#                                      FERRETDB_PID=… into ENVFILE (shell syntax), print the URL
#   scripts/ferretdb.sh stop ENVFILE   stop the server started with that ENVFILE and delete its data
#
# The cache outlives the clone (CI runs in a fresh clone on the same machine): a cold build takes minutes
# of CPU, a cached one none.
set -euo pipefail

readonly version=v1.24.2
readonly cache_dir="${LEDGER_CACHE_DIR:-$HOME/.cache/ledger}/ferretdb-$version"
readonly binary="$cache_dir/ferretdb"
readonly start_timeout_s=60
readonly stop_timeout_s=10

build() {
  if [ -x "$binary" ]; then
    echo "$binary"
    return
  fi
  # The machine kind has Go in /usr/local/go; a login shell may not have it on PATH.
  command -v go > /dev/null || PATH="$PATH:/usr/local/go/bin"
  command -v go > /dev/null || { echo "ferretdb.sh: Go (1.22 or newer) is needed to build FerretDB once; none found" >&2; exit 1; }
  # Global, not local: the RETURN trap runs after the function's locals are gone (set -u), and it
  # removes itself so that later functions' returns do not run it again.
  build_dir=$(mktemp -d)
  trap 'chmod -R u+w "$build_dir" 2> /dev/null; rm -rf "$build_dir"; trap - RETURN' RETURN
  local work=$build_dir
  echo "ferretdb.sh: building FerretDB $version (cold build, a few minutes)..." >&2
  (
    cd "$work"
    export GOPATH="$work/gopath" GOMODCACHE="$work/gopath/pkg/mod" GOFLAGS=-modcacherw GOTOOLCHAIN=local
    go mod init ferretdb-fetch > /dev/null 2>&1
    go get -tool "github.com/FerretDB/FerretDB/cmd/ferretdb@$version" >&2
    # Built straight from the read-only module cache the binary panics at start for want of
    # build/version/version.txt (FerretDB's own build writes it): build from a writable copy that has it.
    cp -r "$(go env GOMODCACHE)/github.com/!ferret!d!b/!ferret!d!b@$version" "$work/src"
    chmod -R u+w "$work/src"
    echo "$version" > "$work/src/build/version/version.txt"
    cd "$work/src"
    go build -o "$work/ferretdb" ./cmd/ferretdb >&2
  )
  mkdir -p "$cache_dir"
  # Atomic rename: a concurrent run never sees half a binary.
  mv "$work/ferretdb" "$binary.tmp.$$"
  mv "$binary.tmp.$$" "$binary"
  echo "$binary"
}

# A free port below the kernel's ephemeral range, as test/support/free-port.ts picks them (not called
# from here: .ci/run starts FerretDB before npm install, so neither tsx nor the helper is there yet). Until
# FerretDB binds it, no outgoing connection can take it, and the readiness probe below cannot connect
# to itself on it (TCP simultaneous open, possible only on a port the kernel could give the probe).
free_port() {
  node -e '
    const fs = require("node:fs"), net = require("node:net");
    let low = 32768;
    try { low = Number(fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]) || low; } catch {}
    const attempt = (left) => {
      const port = 10000 + Math.floor(Math.random() * (low - 10000));
      const probe = net.createServer();
      probe.once("error", () => (left > 0 ? attempt(left - 1) : process.exit(1)));
      probe.listen(port, "127.0.0.1", () => probe.close(() => console.log(port)));
    };
    attempt(100);
  '
}

start() {
  local env_file="$1"
  build > /dev/null
  local data_dir port pid
  data_dir=$(mktemp -d "${TMPDIR:-/tmp}/ledger-ferretdb-XXXXXX")
  port=$(free_port)
  # Everything in the data folder (FerretDB writes state.json into --state-dir, "." by default), and
  # the debug/metrics listener on an ephemeral port so that several servers can run side by side.
  "$binary" --handler=sqlite --sqlite-url="file:$data_dir/" --listen-addr="127.0.0.1:$port" \
    --telemetry=disable --log-level=warn --state-dir="$data_dir" --debug-addr=127.0.0.1:0 \
    > "$data_dir/ferretdb.log" 2>&1 &
  pid=$!
  local url="mongodb://127.0.0.1:$port/"
  local deadline=$((SECONDS + start_timeout_s))
  until node -e '
    const s = require("net").connect(Number(process.argv[1]), "127.0.0.1");
    s.on("connect", () => process.exit(0)); s.on("error", () => process.exit(1));
  ' "$port" 2> /dev/null; do
    if ! kill -0 "$pid" 2> /dev/null; then
      echo "ferretdb.sh: FerretDB exited at start:" >&2; cat "$data_dir/ferretdb.log" >&2; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      echo "ferretdb.sh: FerretDB did not answer on port $port within ${start_timeout_s}s" >&2
      kill "$pid"; exit 1
    fi
    sleep 0.2
  done
  printf 'MONGODB_URL=%q\nFERRETDB_PID=%q\nFERRETDB_DATA=%q\n' "$url" "$pid" "$data_dir" > "$env_file"
  echo "$url"
}

stop() {
  local env_file="$1"
  [ -f "$env_file" ] || return 0
  # shellcheck disable=SC1090
  . "$env_file"
  kill "$FERRETDB_PID" 2> /dev/null || true
  # Let it finish its shutdown before its data folder goes (at most stop_timeout_s, then SIGKILL).
  local deadline=$((SECONDS + stop_timeout_s))
  while kill -0 "$FERRETDB_PID" 2> /dev/null; do
    if [ $SECONDS -ge $deadline ]; then kill -9 "$FERRETDB_PID" 2> /dev/null || true; break; fi
    sleep 0.1
  done
  rm -rf "$FERRETDB_DATA"
  rm -f "$env_file"
}

case "${1:-}" in
  build) build ;;
  start) start "${2:?usage: ferretdb.sh start ENVFILE}" ;;
  stop) stop "${2:?usage: ferretdb.sh stop ENVFILE}" ;;
  *) echo "usage: ferretdb.sh build | start ENVFILE | stop ENVFILE" >&2; exit 2 ;;
esac
