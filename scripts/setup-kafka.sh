#!/usr/bin/env bash
# setup-kafka.sh fetches the jars of an Apache Kafka release, with their runtime
# dependencies and a log4j2 backend, from Maven Central into a cache folder, so that
# testkit/kafkatest can start a real KRaft broker with `java -cp 'libs/*' kafka.Kafka`.
#
# Idempotent and cached: a completed download is marked with libs/.complete and is not
# fetched again. Prints the libs folder on stdout as its last line.
#
# Environment:
#   DRIFTLINE_CACHE          cache root (default $HOME/.cache/driftline)
#   DRIFTLINE_KAFKA_VERSION  Kafka release (default 4.4.0)
#
# Writes $CACHE/kafka/current holding the libs path; kafkatest reads it when
# DRIFTLINE_KAFKA_LIBS is unset.
set -euo pipefail

CACHE="${DRIFTLINE_CACHE:-$HOME/.cache/driftline}"
VERSION="${DRIFTLINE_KAFKA_VERSION:-4.4.0}"
LOG4J_VERSION=2.25.3
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
BASE="$CACHE/kafka/$VERSION"
LIBS="$BASE/libs"

if [[ -f "$LIBS/.complete" ]]; then
	printf '%s\n' "$LIBS" >"$CACHE/kafka/current"
	echo "$LIBS"
	exit 0
fi

for tool in java mvn; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "setup-kafka: '$tool' not found on PATH; install it (Debian: apt-get install -y openjdk-17-jre-headless maven)" >&2
		exit 1
	fi
done

mkdir -p "$BASE"
work="$(mktemp -d "$BASE/.fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT

cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.driftline</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-storage</artifactId><version>$VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM

echo "setup-kafka: fetching org.apache.kafka:kafka_2.13:$VERSION and its runtime dependencies from Maven Central" >&2
start=$SECONDS
if ! mvn -B -q -f "$work/pom.xml" -Dmaven.repo.local="$CACHE/m2" \
	"$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime \
	-DoutputDirectory="$work/libs" >"$work/mvn.log" 2>&1; then
	cat "$work/mvn.log" >&2
	echo "setup-kafka: mvn could not resolve org.apache.kafka:kafka_2.13:$VERSION; check that the version exists and that Maven Central is reachable (proxy settings go in ~/.m2/settings.xml)" >&2
	exit 1
fi

# Kafka logs through slf4j 1.7, so the binding is log4j-slf4j-impl (not the slf4j2 one).
# A log4j2 configuration so the broker logs to stdout (captured by kafkatest).
cat >"$work/libs/log4j2.yaml" <<'YAML'
Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: INFO
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka
        level: INFO
      - name: org.apache.kafka
        level: INFO
YAML

touch "$work/libs/.complete"
rm -rf "$LIBS"
mv "$work/libs" "$LIBS"
printf '%s\n' "$LIBS" >"$CACHE/kafka/current"
echo "setup-kafka: fetched $(ls "$LIBS" | grep -c '\.jar$') jars in $((SECONDS - start))s" >&2
echo "$LIBS"
