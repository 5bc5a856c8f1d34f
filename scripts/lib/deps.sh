# Sourced by scripts/run and scripts/test: makes sure PostgreSQL and a JetStream-enabled
# nats-server answer on 127.0.0.1, starting them (and installing them from Debian's packages)
# when they do not.

SCOREBOARD_STATE=${SCOREBOARD_STATE:-$PWD/.scoreboard}
mkdir -p "$SCOREBOARD_STATE"

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() {
    for _ in $(seq 1 100); do port_open "$1" && return 0; sleep 0.2; done
    echo "nothing answers on 127.0.0.1:$1" >&2
    return 1
}

# Waits (up to 2 minutes) until the service at $1 answers /readyz; fails if it never does.
wait_ready() {
    for _ in $(seq 1 600); do curl -sf "$1/readyz" >/dev/null && return 0; sleep 0.2; done
    echo "$1 never became ready" >&2
    return 1
}

apt_install() {
    echo "installing $* from Debian's packages" >&2
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
    port_open 5432 && return 0
    local installed_now=0
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        apt_install postgresql
        installed_now=1
    fi
    local version
    version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$version" ]; then
        version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
        as_root pg_createcluster "$version" main >/dev/null
        installed_now=1
    fi
    echo "starting PostgreSQL $version" >&2
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    wait_port 5432
    if [ "$installed_now" -eq 1 ]; then
        # A fresh cluster asks for a password over TCP: give postgres the one our URLs carry.
        as_root runuser -u postgres -- psql -qc "ALTER USER postgres PASSWORD 'postgres'" >/dev/null
    fi
}

nats_binary() {
    command -v nats-server 2>/dev/null || ls /usr/sbin/nats-server 2>/dev/null
}

ensure_nats() {
    if [ -z "$(nats_binary)" ]; then
        apt_install nats-server
    fi
    export NATS_SERVER_BIN
    NATS_SERVER_BIN=$(nats_binary)
    port_open 4222 && return 0
    echo "starting nats-server with JetStream (store: $SCOREBOARD_STATE/nats)" >&2
    mkdir -p "$SCOREBOARD_STATE/nats"
    nohup "$NATS_SERVER_BIN" -a 127.0.0.1 -p 4222 -js -sd "$SCOREBOARD_STATE/nats" \
        >"$SCOREBOARD_STATE/nats-server.log" 2>&1 &
    wait_port 4222
}

ensure_browser() {
    # The website's end-to-end test drives Debian's headless Chromium through chromedriver.
    if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
        apt_install chromium chromium-driver
    fi
}

ensure_jwt_libraries() {
    # Interoperability tests mint tokens with PyJWT (PyPI) and jsonwebtoken (npm).
    local dir="$SCOREBOARD_STATE/interop"
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-pip
    fi
    if [ ! -d "$dir/python/jwt" ]; then
        python3 -m pip install --quiet --disable-pip-version-check --target "$dir/python" 'PyJWT>=2.8' \
            || python3 -m pip install --quiet --break-system-packages --target "$dir/python" 'PyJWT>=2.8'
    fi
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    if [ ! -d "$dir/node/node_modules/jsonwebtoken" ]; then
        mkdir -p "$dir/node"
        npm install --silent --no-audit --no-fund --prefix "$dir/node" 'jsonwebtoken@^9' >/dev/null
    fi
    export SCOREBOARD_INTEROP_PYTHONPATH="$dir/python"
    export SCOREBOARD_INTEROP_NODE_PATH="$dir/node/node_modules"
}

ensure_schemathesis() {
    # The OpenAPI property-based test drives every documented route with schemathesis (PyPI);
    # openapi-spec-validator checks the documents themselves against OpenAPI 3.1, and
    # openapi-python-client generates the client a test uses.
    local dir="$SCOREBOARD_STATE/interop/schemathesis" version=4.32.5 validator=0.7.2 generator=0.29.1
    if ! command -v python3 >/dev/null 2>&1; then
        apt_install python3 python3-pip
    fi
    local packages=("schemathesis==$version" "openapi-spec-validator==$validator" "openapi-python-client==$generator")
    if [ "$(cat "$dir/.version" 2>/dev/null)" != "${packages[*]}" ]; then
        rm -rf "$dir"
        python3 -m pip install --quiet --disable-pip-version-check --target "$dir" "${packages[@]}" \
            || python3 -m pip install --quiet --break-system-packages --target "$dir" "${packages[@]}"
        echo "${packages[*]}" >"$dir/.version"
    fi
    export SCOREBOARD_SCHEMATHESIS_PYTHONPATH="$dir"
}

ensure_promtool() {
    # /metrics is checked with Prometheus's own promtool (Debian's prometheus package).
    if ! command -v promtool >/dev/null 2>&1; then
        apt_install prometheus
    fi
}

ensure_go_tlog() {
    # The tile client of the tests: Go's golang.org/x/mod/sumdb/tlog and sumdb/note, from Debian.
    if ! command -v go >/dev/null 2>&1 || [ ! -d /usr/share/gocode/src/golang.org/x/mod/sumdb/tlog ]; then
        apt_install golang-go golang-golang-x-mod-dev
    fi
}

ensure_redis() {
    # A baseline of the benchmark (scripts/bench): Redis sorted sets on 127.0.0.1:6379.
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server redis-tools
    port_open 6379 && return 0
    echo "starting redis-server on 127.0.0.1:6379 (keeps nothing on disk)" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$SCOREBOARD_STATE" --logfile "$SCOREBOARD_STATE/redis.log"
    wait_port 6379
}

ensure_wrk() {
    # The HTTP load generator of the benchmark's read scenarios.
    command -v wrk >/dev/null 2>&1 || apt_install wrk
}
