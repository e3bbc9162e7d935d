#!/usr/bin/env bash
# Installs everything the tests need on a fresh Debian machine, then runs every test.
# This is the README's test command; .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real services and tools the tests drive (Debian packages).
APT_PACKAGES=(
  keystone uwsgi-core uwsgi-plugin-python3   # a real Keystone for keystone-mode tests
  python3-openstackclient python3-glanceclient  # the CLIs the end-to-end tests drive
  qemu-utils                                  # qemu-img: test images, conversion plugin
  curl xz-utils zstd                          # transfers, decompression plugin
  strace                                      # the durability test checks the fsync order
  prometheus                                  # a real Prometheus scrapes /metrics (test/ops/metrics.test.ts)
  tempest glance-tempest-plugin               # tempest's image API tests (test/tempest/tempest.test.ts)
  haproxy                                     # the balancer in front of three nodes (test/scale/haproxy.test.ts)
  swift swift-proxy swift-object swift-container swift-account memcached  # a real S3 (Swift s3api) for the s3 store (test/support/swift.ts)
  glance-api python3-pymysql python3-psycopg2 mariadb-server  # a real Glance on MariaDB to migrate from (test/ops/import-glance.test.ts)
  rabbitmq-server python3-oslo.messaging      # the message bus notifications go to, and an oslo.messaging listener reading them (test/notifications/)
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# PostgreSQL for the second pass: the CI machine runs one at 127.0.0.1:5432 (trust auth, database
# `test`); on a machine without one, install Debian's and start it the same way.
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if [ "${IMAGO_TEST_PG_PASS:-1}" = 1 ] && ! pg_up; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if ! command -v pg_ctlcluster >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  fi
  ver=$(ls /etc/postgresql | sort -V | tail -1)
  conf=/etc/postgresql/$ver/main
  # trust on loopback, as the tests expect (a throwaway test machine)
  if ! grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf"; then
    printf 'host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' | $SUDO tee "$conf/pg_hba.conf.imago" >/dev/null
    $SUDO sh -c "cat '$conf/pg_hba.conf' >> '$conf/pg_hba.conf.imago' && mv '$conf/pg_hba.conf.imago' '$conf/pg_hba.conf'"
  fi
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
  for _ in $(seq 30); do pg_up && break; sleep 1; done
  if [ -z "$SUDO" ]; then as_pg="runuser -u postgres --"; else as_pg="sudo -u postgres"; fi
  $as_pg psql -q -c 'CREATE DATABASE test' 2>/dev/null || true
fi

# RabbitMQ for the notification tests: the CI machine runs one at 127.0.0.1:5672 (guest/guest, which
# RabbitMQ only accepts from loopback); on a machine without one listening, start Debian's.
rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up && command -v rabbitmq-server >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 60); do rabbit_up && break; sleep 1; done
fi

# MariaDB for the Glance migration test: 127.0.0.1:3306, root without password (a throwaway test
# machine; Debian's root@localhost authenticates by unix socket, so add a password-less root@127.0.0.1).
my_up() { mysql -h 127.0.0.1 -P 3306 -u root -e 'SELECT 1' >/dev/null 2>&1; }
if ! my_up && command -v mysqld_safe >/dev/null; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO mkdir -p /run/mysqld && $SUDO chown mysql:mysql /run/mysqld
  $SUDO sh -c 'mysqld_safe --bind-address=127.0.0.1 >/dev/null 2>&1 &'
  for _ in $(seq 30); do $SUDO mysqladmin ping --silent 2>/dev/null && break; sleep 1; done
  $SUDO mysql -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY ''; GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" || true
  for _ in $(seq 10); do my_up && break; sleep 1; done
fi

npm ci --no-audit --no-fund
npm run build
# Tempest runs as one of the tests (several minutes); IMAGO_TEMPEST=0 leaves it out.
export IMAGO_TEMPEST="${IMAGO_TEMPEST:-1}"
# Two passes (scripts/run-tests.mjs): every test on SQLite, then the database-dependent ones on
# PostgreSQL. IMAGO_TEST_PG_PASS=0 runs the SQLite pass only.
if [ "${IMAGO_TEST_PG_PASS:-1}" = 1 ]; then pass=all; else pass=sqlite; fi
node scripts/run-tests.mjs --pass "$pass"
