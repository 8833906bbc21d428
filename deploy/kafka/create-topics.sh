#!/usr/bin/env bash
# Create the event topics and their dead-letter topics with the settings of deploy/README.md.
# Usage: create-topics.sh BOOTSTRAP   (env PARTITIONS, REPLICATION; defaults 6 and 3)
set -euo pipefail
BOOTSTRAP=${1:?bootstrap server}
PARTITIONS=${PARTITIONS:-6}
REPLICATION=${REPLICATION:-3}
KT=${KAFKA_TOPICS:-/opt/kafka/bin/kafka-topics.sh}
DAY=86400000

create() { # topic retention-ms [extra config...]
  local topic=$1 retention=$2; shift 2
  "$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$topic" \
    --partitions "$PARTITIONS" --replication-factor "$REPLICATION" \
    --config "retention.ms=$retention" --config min.insync.replicas=$(( REPLICATION > 1 ? 2 : 1 )) "$@"
  "$KT" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists --topic "$topic.dlq" \
    --partitions 1 --replication-factor "$REPLICATION" --config "retention.ms=$(( 30 * DAY ))"
}

# Sealed contact data (sampled citizens only) travels on contacts.released, and the whole
# population on population.received: keep them only as long as a round needs them.
create population.received $(( 14 * DAY ))
create contacts.released   $(( 14 * DAY ))
# Phone numbers sealed for the interviewer's page (rounds that offer interviews by phone only).
create interview.phones_released $(( 14 * DAY ))
create sample.drawn        $(( 60 * DAY ))
create link.issued         $(( 60 * DAY ))
create invitation.sent     $(( 400 * DAY ))
create response.submitted  $(( 400 * DAY ))
create response.opted_out  $(( 400 * DAY ))
# The round's definition (ingest) and the counts behind analytics' round overview: no personal
# data; kept as long as the answers, so analytics can rebuild the overview by replay.
create round.defined      $(( 400 * DAY ))
create delivery.accepted  $(( 400 * DAY ))
create sampling.progress  $(( 400 * DAY ))
create dispatch.progress  $(( 400 * DAY ))
# The round's questionnaire for print (responses -> dispatch): wording only, the latest state per
# round; kept as long as a round runs, so a dispatch rebuilt by replay can still print it.
create questionnaire.offered $(( 400 * DAY ))
# The frame's population counts per municipality x target group x bands (sampling -> analytics):
# counts only; kept as long as the answers, the population the estimates are calibrated to.
create frame.margins $(( 400 * DAY ))
# Privacy coordination (no personal data: pseudonyms of erased citizens only until handled).
create round.purge_requested      $(( 30 * DAY ))
create round.purged               $(( 400 * DAY ))
create citizen.erasure_requested  $(( 7 * DAY ))
create citizen.erased             $(( 400 * DAY ))
echo "topics ready"
