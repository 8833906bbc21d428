#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars from Maven Central (via deploy/kafka/pom.xml)
# into a cache directory, once. Prints the libs directory on stdout (last line).
#
#   deploy/kafka/fetch-kafka.sh            -> .../libs
#
# Environment:
#   BORGERBLIK_KAFKA_VERSION  Kafka version (default: <kafka.version> in pom.xml)
#   BORGERBLIK_KAFKA_HOME     cache root (default: ${XDG_CACHE_HOME:-~/.cache}/borgerblik/kafka/<version>);
#                             the jars go to $BORGERBLIK_KAFKA_HOME/libs
#   MVN                       maven executable (default: mvn)
#
# The cache is marked complete with libs/.borgerblik-complete (holding the version
# and a hash of pom.xml); when that marker matches, mvn is not run at all. The jars
# are copied into a temporary directory and moved into place, under a flock, so
# concurrent callers (parallel test workers, CI jobs) never see a half-filled cache.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
pom="$here/pom.xml"

default_version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom" | head -n1)"
version="${BORGERBLIK_KAFKA_VERSION:-$default_version}"
if [[ -z "$version" ]]; then
  echo "fetch-kafka.sh: cannot determine the Kafka version from $pom" >&2
  exit 2
fi

home="${BORGERBLIK_KAFKA_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/borgerblik/kafka/$version}"
libs="$home/libs"
marker="$libs/.borgerblik-complete"
pom_hash="$(sha256sum "$pom" | cut -d' ' -f1)"
want="version=$version pom=$pom_hash"

is_complete() {
  [[ -f "$marker" ]] && [[ "$(cat "$marker")" == "$want" ]] && compgen -G "$libs/kafka_2.13-*.jar" >/dev/null
}

if is_complete; then
  echo "$libs"
  exit 0
fi

mkdir -p "$home"
exec 9>"$home/.fetch.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

# Somebody else may have filled it while we waited for the lock.
if is_complete; then
  echo "$libs"
  exit 0
fi

mvn_bin="${MVN:-mvn}"
if ! command -v "$mvn_bin" >/dev/null 2>&1; then
  echo "fetch-kafka.sh: '$mvn_bin' not found; Maven 3 is needed to fetch the Kafka jars from Maven Central" >&2
  exit 3
fi

tmp="$(mktemp -d "$home/.libs.tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-kafka.sh: fetching Apache Kafka $version jars from Maven Central into $libs ..." >&2
start=$(date +%s)
if ! "$mvn_bin" -B -q -Dstyle.color=never -f "$pom" -Dkafka.version="$version" \
      dependency:copy-dependencies -DoutputDirectory="$tmp" -DincludeScope=runtime >"$home/fetch.log" 2>&1; then
  echo "fetch-kafka.sh: mvn failed; see $home/fetch.log" >&2
  tail -n 30 "$home/fetch.log" >&2 || true
  exit 4
fi
if ! compgen -G "$tmp/kafka_2.13-$version.jar" >/dev/null; then
  echo "fetch-kafka.sh: mvn succeeded but kafka_2.13-$version.jar is missing from $tmp" >&2
  exit 5
fi
echo "$want" >"$tmp/.borgerblik-complete"
rm -rf "$libs"
mv "$tmp" "$libs"
trap - EXIT
echo "fetch-kafka.sh: fetched $(ls "$libs"/*.jar | wc -l) jars in $(( $(date +%s) - start ))s" >&2
echo "$libs"
